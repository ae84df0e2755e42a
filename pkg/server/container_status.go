package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/shim"
	"github.com/crid-dev/crid/pkg/store"
)

// ContainerStatus reports a container; verbose adds its pids, runtime
// handler, bundle and OCI spec under info["info"].
func (s *RuntimeService) ContainerStatus(ctx context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ContainerStatus: container_id is required")
	}
	c, err := s.containers.Resolve(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := s.containerStatus(c)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: st}
	if req.Verbose {
		bundle := s.containers.Bundle(c.ID)
		info, err := json.Marshal(map[string]any{
			"id": c.ID, "sandboxID": c.SandboxID, "pid": c.Pid, "shimPid": c.ShimPid,
			"runtimeHandler": c.RuntimeHandler, "bundle": bundle, "runtimeSpec": readSpec(bundle),
		})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// containerStatus is a container's CRI status, from its record alone
// (kubelet asks often, for every container of a pod).
func (s *RuntimeService) containerStatus(c *store.Container) (*runtime.ContainerStatus, error) {
	cfg, err := container.Config(c)
	if err != nil {
		return nil, err
	}
	st := &runtime.ContainerStatus{
		Id: c.ID, Metadata: &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}, State: containerState(c.State),
		CreatedAt: c.CreatedAt.UnixNano(), StartedAt: unixNano(c.StartedAt), FinishedAt: unixNano(c.FinishedAt),
		ExitCode: c.ExitCode, Image: cfg.GetImage(), ImageRef: c.ImageRef, ImageId: c.ImageID,
		Reason: c.Reason, Message: c.Message, Labels: c.Labels, Annotations: c.Annotations,
		Mounts: cfg.GetMounts(), LogPath: c.LogPath,
		StopSignal: cfg.GetStopSignal(),
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		st.Resources = &runtime.ContainerResources{Linux: r}
	}
	if u := c.User; u != nil {
		groups := make([]int64, 0, len(u.Groups))
		for _, g := range u.Groups {
			groups = append(groups, int64(g))
		}
		st.User = &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: groups}}
	}
	return st, nil
}

// podContainerStatuses are the statuses of a pod's containers.
func (s *RuntimeService) podContainerStatuses(sandboxID string) ([]*runtime.ContainerStatus, error) {
	all, err := s.containers.List()
	if err != nil {
		return nil, err
	}
	var out []*runtime.ContainerStatus
	for _, c := range (container.Filter{SandboxID: sandboxID}).Apply(all) {
		if c.SandboxID != sandboxID {
			continue // a prefix match of another pod
		}
		st, err := s.containerStatus(c)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func readSpec(bundle string) *specs.Spec {
	data, err := os.ReadFile(filepath.Join(bundle, shim.ConfigName))
	if err != nil {
		return nil
	}
	var spec specs.Spec
	if json.Unmarshal(data, &spec) != nil {
		return nil
	}
	return &spec
}

// ListContainers lists containers matching the filter: id and pod id
// (exact or prefix), state, and a label selector.
func (s *RuntimeService) ListContainers(ctx context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	items, err := s.listContainers(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtime.ListContainersResponse{Containers: items}, nil
}

// StreamContainers is ListContainers in chunks.
func (s *RuntimeService) StreamContainers(req *runtime.StreamContainersRequest, stream runtime.RuntimeService_StreamContainersServer) error {
	items, err := s.listContainers(req.GetFilter())
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(items, func(chunk []*runtime.Container) error {
		return stream.Send(&runtime.StreamContainersResponse{Containers: chunk})
	})
}

func (s *RuntimeService) listContainers(f *runtime.ContainerFilter) ([]*runtime.Container, error) {
	all, err := s.containers.List()
	if err != nil {
		return nil, err
	}
	filter := container.Filter{ID: f.GetId(), SandboxID: f.GetPodSandboxId(), Labels: f.GetLabelSelector()}
	if st := f.GetState(); st != nil {
		want := recordState(st.State)
		filter.State = &want
	}
	var items []*runtime.Container
	for _, c := range filter.Apply(all) {
		cfg, err := container.Config(c)
		if err != nil {
			return nil, err
		}
		items = append(items, &runtime.Container{
			Id: c.ID, PodSandboxId: c.SandboxID, Metadata: &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
			Image: cfg.GetImage(), ImageRef: c.ImageRef, ImageId: c.ImageID, State: containerState(c.State),
			CreatedAt: c.CreatedAt.UnixNano(), Labels: c.Labels, Annotations: c.Annotations,
		})
	}
	return items, nil
}

// containerStates pairs record states with CRI ones; the rest are UNKNOWN.
var containerStates = map[store.State]runtime.ContainerState{
	store.StateCreated: runtime.ContainerState_CONTAINER_CREATED,
	store.StateRunning: runtime.ContainerState_CONTAINER_RUNNING,
	store.StateExited:  runtime.ContainerState_CONTAINER_EXITED,
}

func containerState(s store.State) runtime.ContainerState {
	if cs, ok := containerStates[s]; ok {
		return cs
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

func recordState(cs runtime.ContainerState) store.State {
	for s, c := range containerStates {
		if c == cs {
			return s
		}
	}
	return store.StateUnknown
}

// unixNano is t in nanoseconds, 0 for the zero time (not yet).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
