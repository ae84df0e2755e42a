package server

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

// ExecSync runs a command in a running container and returns its output
// and exit code; after timeout seconds (0 = none) it is killed and the
// call fails with DeadlineExceeded.
func (s *RuntimeService) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ExecSync: container_id is required")
	}
	if len(req.GetCmd()) == 0 {
		return nil, invalid("ExecSync: cmd is required")
	}
	if req.GetTimeout() < 0 {
		return nil, invalid("ExecSync: timeout %d is negative", req.GetTimeout())
	}
	out, errOut, code, err := s.containers.ExecSync(ctx, req.ContainerId, req.Cmd, time.Duration(req.Timeout)*time.Second)
	if err != nil {
		return nil, err
	}
	return &runtime.ExecSyncResponse{Stdout: out, Stderr: errOut, ExitCode: code}, nil
}

// Exec returns the URL of a streaming exec into a running container.
func (s *RuntimeService) Exec(ctx context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if req.GetContainerId() == "" || len(req.GetCmd()) == 0 {
		return nil, invalid("Exec: container_id and cmd are required")
	}
	if err := s.requireRunning(req.ContainerId); err != nil {
		return nil, err
	}
	if !req.Stdin && !req.Stdout && !req.Stderr {
		return nil, invalid("Exec: one of stdin, stdout or stderr must be set")
	}
	if req.Tty && req.Stderr {
		return nil, invalid("Exec: tty and stderr cannot both be set (a terminal has one output)")
	}
	return s.stream.GetExec(req)
}

// Attach returns the URL of a stream attached to a running container.
func (s *RuntimeService) Attach(ctx context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("Attach: container_id is required")
	}
	if err := s.requireRunning(req.ContainerId); err != nil {
		return nil, err
	}
	if !req.Stdin && !req.Stdout && !req.Stderr {
		return nil, invalid("Attach: one of stdin, stdout or stderr must be set")
	}
	return s.stream.GetAttach(req)
}

// PortForward returns the URL of a port-forward stream into a ready pod.
func (s *RuntimeService) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("PortForward: pod_sandbox_id is required")
	}
	for _, p := range req.Port {
		if p <= 0 || p > 65535 {
			return nil, invalid("PortForward: port %d is not a TCP port", p)
		}
	}
	sb, err := s.sandboxes.Resolve(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if sb.State != store.StateReady {
		return nil, fmt.Errorf("PortForward: pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	req.PodSandboxId = sb.ID
	return s.stream.GetPortForward(req)
}

func (s *RuntimeService) requireRunning(id string) error {
	c, err := s.containers.Resolve(id)
	if err != nil {
		return err
	}
	if c.State != store.StateRunning {
		return fmt.Errorf("container %s is not running (%s): %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	return nil
}
