package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopPodSandbox tears down the pod's network and infra process. It is
// idempotent: stopping a stopped sandbox succeeds.
func (s *RuntimeService) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("StopPodSandbox: pod sandbox id is empty")
	}
	if err := s.sandboxes.Stop(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes a sandbox and everything it had. Removing an
// unknown sandbox succeeds (CRI idempotence).
func (s *RuntimeService) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("RemovePodSandbox: pod sandbox id is empty")
	}
	if err := s.sandboxes.Remove(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}
