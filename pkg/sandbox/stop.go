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
	sb, err := m.Resolve(idOrPrefix)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	unlock := m.lock(sb.ID)
	defer unlock()
	if sb, err = m.get(sb.ID); errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
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
	sb, err := m.Resolve(idOrPrefix)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	unlock := m.lock(sb.ID)
	defer unlock()
	if sb, err = m.get(sb.ID); errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if err := m.teardown(ctx, sb, true, false); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	m.locks.Delete(sb.ID)
	m.log.Info("pod sandbox removed", "sandbox", sb.ID)
	return nil
}

func (m *Manager) get(id string) (*store.Sandbox, error) {
	var sb *store.Sandbox
	err := m.db.View(func(tx *store.Tx) (err error) { sb, err = tx.Sandbox(id); return err })
	return sb, err
}
