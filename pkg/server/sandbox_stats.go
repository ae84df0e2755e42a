package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/store"
)

// PodSandboxStats reports a pod's CPU, memory, network and process usage
// with its containers' stats.
func (s *RuntimeService) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("PodSandboxStats: pod_sandbox_id is required")
	}
	sb, err := s.sandboxes.Resolve(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st, err := s.podStats(sb)
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats reports the stats of the pods matching the filter.
func (s *RuntimeService) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	stats, err := s.listPodStats(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtime.ListPodSandboxStatsResponse{Stats: stats}, nil
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *RuntimeService) StreamPodSandboxStats(req *runtime.StreamPodSandboxStatsRequest, stream runtime.RuntimeService_StreamPodSandboxStatsServer) error {
	stats, err := s.listPodStats(req.GetFilter())
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(stats, func(chunk []*runtime.PodSandboxStats) error {
		return stream.Send(&runtime.StreamPodSandboxStatsResponse{PodSandboxStats: chunk})
	})
}

func (s *RuntimeService) listPodStats(f *runtime.PodSandboxStatsFilter) ([]*runtime.PodSandboxStats, error) {
	all, err := s.sandboxes.List()
	if err != nil {
		return nil, err
	}
	var out []*runtime.PodSandboxStats
	for _, sb := range (sandbox.Filter{ID: f.GetId(), Labels: f.GetLabelSelector()}).Apply(all) {
		st, err := s.podStats(sb)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *RuntimeService) podStats(sb *store.Sandbox) (*runtime.PodSandboxStats, error) {
	cfg := sandboxConfig(sb)
	ps, err := s.containers.PodStats(sb, cfg.GetLinux().GetCgroupParent())
	if err != nil {
		return nil, err
	}
	ts := ps.Timestamp.UnixNano()
	linux := &runtime.LinuxPodSandboxStats{
		Cpu: &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: ps.CPUUsageNanos}},
		Memory: &runtime.MemoryUsage{Timestamp: ts,
			UsageBytes:      &runtime.UInt64Value{Value: ps.MemoryUsage},
			WorkingSetBytes: &runtime.UInt64Value{Value: ps.MemoryWorkingSet},
			RssBytes:        &runtime.UInt64Value{Value: ps.MemoryRSS},
		},
		Process: &runtime.ProcessUsage{Timestamp: ts, ProcessCount: &runtime.UInt64Value{Value: ps.ProcessCount}},
	}
	if len(ps.Interfaces) > 0 {
		linux.Network = &runtime.NetworkUsage{Timestamp: ts}
		for _, i := range ps.Interfaces {
			u := &runtime.NetworkInterfaceUsage{
				Name:    i.Name,
				RxBytes: &runtime.UInt64Value{Value: i.RxBytes}, RxErrors: &runtime.UInt64Value{Value: i.RxErrors},
				TxBytes: &runtime.UInt64Value{Value: i.TxBytes}, TxErrors: &runtime.UInt64Value{Value: i.TxErrors},
			}
			if i.Name == "eth0" {
				linux.Network.DefaultInterface = u
			} else {
				linux.Network.Interfaces = append(linux.Network.Interfaces, u)
			}
		}
	}
	for _, c := range ps.Containers {
		linux.Containers = append(linux.Containers, toContainerStats(c.Container, c.Stats))
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: sb.ID, Metadata: cfg.Metadata, Labels: sb.Labels, Annotations: sb.Annotations},
		Linux:      linux,
	}, nil
}
