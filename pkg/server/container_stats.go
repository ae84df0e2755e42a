package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/store"
)

// ContainerStats reports a container's CPU, memory and writable layer usage.
func (s *RuntimeService) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ContainerStats: container_id is required")
	}
	c, err := s.containers.Resolve(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := s.containerStats(c)
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats reports the stats of the containers matching the
// filter (id and pod id, exact or prefix, and labels).
func (s *RuntimeService) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	stats, err := s.listContainerStats(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtime.ListContainerStatsResponse{Stats: stats}, nil
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *RuntimeService) StreamContainerStats(req *runtime.StreamContainerStatsRequest, stream runtime.RuntimeService_StreamContainerStatsServer) error {
	stats, err := s.listContainerStats(req.GetFilter())
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(stats, func(chunk []*runtime.ContainerStats) error {
		return stream.Send(&runtime.StreamContainerStatsResponse{ContainerStats: chunk})
	})
}

func (s *RuntimeService) listContainerStats(f *runtime.ContainerStatsFilter) ([]*runtime.ContainerStats, error) {
	all, err := s.containers.List()
	if err != nil {
		return nil, err
	}
	filter := container.Filter{ID: f.GetId(), SandboxID: f.GetPodSandboxId(), Labels: f.GetLabelSelector()}
	var out []*runtime.ContainerStats
	for _, c := range filter.Apply(all) {
		st, err := s.containerStats(c)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *RuntimeService) containerStats(c *store.Container) (*runtime.ContainerStats, error) {
	st, err := s.containers.Stats(c)
	if err != nil {
		return nil, err
	}
	return toContainerStats(c, st), nil
}

func toContainerStats(c *store.Container, st *container.Stats) *runtime.ContainerStats {
	ts := st.Timestamp.UnixNano()
	out := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id: c.ID, Metadata: &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
			Labels: c.Labels, Annotations: c.Annotations,
		},
		WritableLayer: &runtime.FilesystemUsage{
			Timestamp: ts, FsId: &runtime.FilesystemIdentifier{Mountpoint: st.LayerMountpoint},
			UsedBytes: &runtime.UInt64Value{Value: st.LayerBytes}, InodesUsed: &runtime.UInt64Value{Value: st.LayerInodes},
		},
		Cpu:    &runtime.CpuUsage{Timestamp: ts},
		Memory: &runtime.MemoryUsage{Timestamp: ts},
	}
	if st.HasCgroup {
		out.Cpu.UsageCoreNanoSeconds = &runtime.UInt64Value{Value: st.CPUUsageNanos}
		out.Memory.WorkingSetBytes = &runtime.UInt64Value{Value: st.MemoryWorkingSet}
		out.Memory.UsageBytes = &runtime.UInt64Value{Value: st.MemoryUsage}
		out.Memory.RssBytes = &runtime.UInt64Value{Value: st.MemoryRSS}
		out.Memory.PageFaults = &runtime.UInt64Value{Value: st.PageFaults}
		out.Memory.MajorPageFaults = &runtime.UInt64Value{Value: st.MajorPageFaults}
	}
	return out
}
