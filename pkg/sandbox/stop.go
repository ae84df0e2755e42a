package sandbox

import (
	"context"
	"fmt"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

// Stop tears down the pod's network and ends its infra process; the
// sandbox stays listed as not ready until removed. Stopping a stopped or
// unknown sandbox succeeds: the CRI contract makes StopPodSandbox
// idempotent "if all relevant resources have already been reclaimed".
func (m *Manager) Stop(ctx context.Context, idOrPrefix string) error {
	sb, unlock, err := m.lockExisting(idOrPrefix)
	if sb == nil {
		return err
	}
	defer unlock()
	// TODO(containers issue): stop the sandbox's containers first.
	if err := m.teardown(ctx, sb, false, false); err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", sb.ID, err)
	}
	if sb.State != store.StateNotReady {
		sb.State = store.StateNotReady
		if err := m.put(sb); err != nil {
			return fmt.Errorf("record stopped sandbox %s: %w", sb.ID, err)
		}
		m.log.Info("pod sandbox stopped", "sandbox", sb.ID)
	}
	return nil
}

// Remove stops the sandbox if needed and deletes everything it had. An
// unknown sandbox is not an error.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	sb, unlock, err := m.lockExisting(idOrPrefix)
	if sb == nil {
		return err
	}
	defer unlock()
	if err := m.teardown(ctx, sb, true, false); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	m.locks.Delete(sb.ID)
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

func (m *Manager) get(id string) (*store.Sandbox, error) {
	var sb *store.Sandbox
	err := m.db.View(func(tx *store.Tx) (err error) { sb, err = tx.Sandbox(id); return err })
	return sb, err
}
