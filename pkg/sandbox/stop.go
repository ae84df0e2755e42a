package sandbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

// Stop stops the pod's containers, ends its infra process, tears down its
// network (CNI DEL) and frees its netns, /dev/shm and namespace pins; the
// sandbox stays listed as not ready until removed. Stop is idempotent: a
// stopped, partly torn-down or unknown sandbox is not an error, as the CRI
// asks once all its resources are reclaimed.
func (m *Manager) Stop(ctx context.Context, idOrPrefix string) error {
	sb, unlock, err := m.lockExisting(idOrPrefix)
	if sb == nil {
		return err
	}
	defer unlock()
	if err := m.stop(ctx, sb); err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", sb.ID, err)
	}
	return nil
}

// stop does Stop's work under the sandbox lock. The record becomes not
// ready even when a step failed, since the infra may already be gone; the
// network is recorded as down only once CNI DEL succeeded.
func (m *Manager) stop(ctx context.Context, sb *store.Sandbox) error {
	var errs []error
	if c := m.containerManager(); c != nil {
		if err := c.StopAll(ctx, sb.ID); err != nil {
			errs = append(errs, fmt.Errorf("stop containers: %w", err))
		}
	}
	netDown, err := m.release(ctx, sb)
	errs = append(errs, err)
	if sb.State != store.StateNotReady || netDown != sb.NetworkDown {
		wasReady := sb.State == store.StateReady
		sb.State, sb.NetworkDown = store.StateNotReady, netDown
		if err := m.put(sb); err != nil {
			errs = append(errs, err)
		} else if wasReady {
			m.log.Info("pod sandbox stopped", "sandbox", sb.ID)
		}
	}
	return errors.Join(errs...)
}

// Remove stops the sandbox if needed, removes its containers, and deletes
// everything it had and its record. Removing an unknown sandbox succeeds.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	sb, unlock, err := m.lockExisting(idOrPrefix)
	if sb == nil {
		return err
	}
	defer unlock()
	if c := m.containerManager(); c != nil {
		if err := c.RemoveAll(ctx, sb.ID); err != nil {
			return fmt.Errorf("remove pod sandbox %s: remove its containers: %w", sb.ID, err)
		}
	}
	if err := m.teardown(ctx, sb, true, false); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	m.log.Info("pod sandbox removed", "sandbox", sb.ID)
	return nil
}

// lockExisting resolves a sandbox and locks it, re-reading the record under
// the lock. A sandbox that does not exist (or vanished meanwhile) gives nil
// and no error: Stop and Remove are idempotent.
func (m *Manager) lockExisting(idOrPrefix string) (*store.Sandbox, func(), error) {
	sb, err := m.Resolve(idOrPrefix)
	if errdefs.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	unlock := m.lock(sb.ID)
	if sb, err = m.get(sb.ID); err != nil {
		unlock()
		if errdefs.IsNotFound(err) {
			err = nil
		}
		return nil, nil, err
	}
	return sb, unlock, nil
}

func (m *Manager) containerManager() Containers {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.containers
}

func (m *Manager) get(id string) (*store.Sandbox, error) {
	var sb *store.Sandbox
	err := m.db.View(func(tx *store.Tx) (err error) { sb, err = tx.Sandbox(id); return err })
	return sb, err
}
