package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/sandbox"
)

// ListPodSandbox lists sandboxes matching the filter: id (exact or a
// unique prefix), state and a label selector that every label must match.
func (s *RuntimeService) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	items, err := s.listPodSandboxes(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtime.ListPodSandboxResponse{Items: items}, nil
}

// streamChunk is how many sandboxes one StreamPodSandboxes message holds.
const streamChunk = 500

// StreamPodSandboxes is ListPodSandbox in chunks, for nodes whose list
// would exceed the gRPC message size.
func (s *RuntimeService) StreamPodSandboxes(req *runtime.StreamPodSandboxesRequest, stream runtime.RuntimeService_StreamPodSandboxesServer) error {
	items, err := s.listPodSandboxes(req.GetFilter())
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(items, func(chunk []*runtime.PodSandbox) error {
		return stream.Send(&runtime.StreamPodSandboxesResponse{PodSandboxes: chunk})
	})
}

// sendChunks sends items streamChunk at a time.
func sendChunks[T any](items []T, send func([]T) error) error {
	for len(items) > 0 {
		n := min(len(items), streamChunk)
		if err := send(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

func (s *RuntimeService) listPodSandboxes(f *runtime.PodSandboxFilter) ([]*runtime.PodSandbox, error) {
	all, err := s.sandboxes.List()
	if err != nil {
		return nil, err
	}
	filter := sandbox.Filter{ID: f.GetId(), Labels: f.GetLabelSelector()}
	if st := f.GetState(); st != nil {
		ready := st.State == runtime.PodSandboxState_SANDBOX_READY
		filter.Ready = &ready
	}
	var items []*runtime.PodSandbox
	for _, sb := range filter.Apply(all) {
		items = append(items, &runtime.PodSandbox{
			Id: sb.ID, Metadata: sandboxConfig(sb).Metadata, State: sandboxState(sb.State),
			CreatedAt: sb.CreatedAt.UnixNano(), Labels: sb.Labels, Annotations: sb.Annotations,
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	return items, nil
}
