package server

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes matching the filter: id (or unique
// prefix), state and a label selector that every label must match.
func (s *RuntimeService) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	all, err := s.sandboxes.List()
	if err != nil {
		return nil, err
	}
	f := req.GetFilter()
	resp := &runtime.ListPodSandboxResponse{}
	for _, sb := range all {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().State != sandboxState(sb.State) {
			continue
		}
		if !matchLabels(sb.Labels, f.GetLabelSelector()) {
			continue
		}
		resp.Items = append(resp.Items, &runtime.PodSandbox{
			Id: sb.ID, Metadata: sandboxConfig(sb).Metadata, State: sandboxState(sb.State),
			CreatedAt: sb.CreatedAt.UnixNano(), Labels: sb.Labels, Annotations: sb.Annotations,
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	return resp, nil
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
