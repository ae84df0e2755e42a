package container

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci"
	"github.com/crid-dev/crid/pkg/shim"
	"github.com/crid-dev/crid/pkg/store"
)

// Update applies new resources to a created or running container through
// its runtime and records them, so that status reports what applies.
func (m *Manager) Update(ctx context.Context, idOrPrefix string, r *runtime.LinuxContainerResources) error {
	if r == nil {
		return fmt.Errorf("linux resources are required: %w", errdefs.ErrInvalidArgument)
	}
	c, unlock, err := m.lockExisting(idOrPrefix)
	if err != nil {
		return err
	}
	defer unlock()
	if c.State != store.StateCreated && c.State != store.StateRunning {
		return fmt.Errorf("container %s is %s: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	res, warnings, err := oci.UpdateResources(m.o.Host, r)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		m.log.Warn("container resources adjusted", "container", c.ID, "warning", w)
	}
	if _, err := shim.Call(ctx, m.Bundle(c.ID), &shim.Request{Op: shim.OpUpdate, Resources: res}); err != nil {
		if errors.Is(err, shim.ErrNotRunning) || errors.Is(err, shim.ErrUnreachable) {
			return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("update container %s: %w", c.ID, err)
	}
	cfg, err := Config(c)
	if err != nil {
		return err
	}
	if cfg.Linux == nil {
		cfg.Linux = &runtime.LinuxContainerConfig{}
	}
	cfg.Linux.Resources = r
	if c.Config, err = protojson.Marshal(cfg); err != nil {
		return err
	}
	return m.put(c)
}

// ReopenLog makes the shim reopen the container's log file (after kubelet
// rotated it). Only a running container has output to write.
func (m *Manager) ReopenLog(ctx context.Context, idOrPrefix string) error {
	c, err := m.Resolve(idOrPrefix)
	if err != nil {
		return err
	}
	if c.State != store.StateRunning {
		return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if _, err := shim.Call(ctx, m.Bundle(c.ID), &shim.Request{Op: shim.OpReopen}); err != nil {
		if errors.Is(err, shim.ErrNotRunning) || errors.Is(err, shim.ErrUnreachable) {
			return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("reopen log of container %s: %w", c.ID, err)
	}
	return nil
}
