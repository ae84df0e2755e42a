package server

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates a container in a ready pod sandbox.
func (s *RuntimeService) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("CreateContainer: pod_sandbox_id is required")
	}
	if req.GetConfig().GetMetadata().GetName() == "" {
		return nil, invalid("CreateContainer: config with metadata.name is required")
	}
	if req.GetConfig().GetImage().GetImage() == "" {
		return nil, invalid("CreateContainer: config.image.image is required")
	}
	id, err := s.containers.Create(ctx, req.PodSandboxId, req.Config, req.GetSandboxConfig())
	if err != nil {
		return nil, err
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// StartContainer starts a created container.
func (s *RuntimeService) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("StartContainer: container_id is required")
	}
	if err := s.containers.Start(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.StartContainerResponse{}, nil
}

// StopContainer stops a container, waiting at most timeout seconds for it
// to exit on its stop signal before killing it.
func (s *RuntimeService) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("StopContainer: container_id is required")
	}
	if req.GetTimeout() < 0 {
		return nil, invalid("StopContainer: timeout %d is negative", req.GetTimeout())
	}
	if err := s.containers.Stop(ctx, req.ContainerId, time.Duration(req.Timeout)*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

// RemoveContainer removes a container (killing it if it runs); removing
// an unknown container succeeds.
func (s *RuntimeService) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("RemoveContainer: container_id is required")
	}
	if err := s.containers.Remove(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// UpdateContainerResources applies new resources to a live container.
func (s *RuntimeService) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("UpdateContainerResources: container_id is required")
	}
	if req.GetLinux() == nil {
		return nil, invalid("UpdateContainerResources: linux resources are required")
	}
	if err := s.containers.Update(ctx, req.ContainerId, req.Linux); err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog has the container's shim reopen its log file.
func (s *RuntimeService) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ReopenContainerLog: container_id is required")
	}
	if err := s.containers.ReopenLog(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
