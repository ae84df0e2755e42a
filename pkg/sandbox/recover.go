package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/store"
)

// Recover reconciles records and the node after a restart: half-created
// sandboxes are rolled back, ready ones whose infra died become not ready,
// and netns pins, sandbox dirs and CNI allocations with no record are removed.
func (m *Manager) Recover(ctx context.Context) error {
	var all []*store.Sandbox
	if err := m.db.View(func(tx *store.Tx) (err error) { all, err = tx.Sandboxes(); return err }); err != nil {
		return err
	}
	var errs []error
	known := map[string]bool{}
	for _, sb := range all {
		switch {
		case sb.State == store.StateCreating:
			m.log.Info("rolling back sandbox interrupted while being created", "sandbox", sb.ID)
			if err := m.teardown(ctx, sb, true, true); err != nil {
				errs = append(errs, err)
				known[sb.ID] = true
			}
			continue
		case sb.State == store.StateReady && !(infraProc{pid: sb.Pid, start: sb.PidStart}).alive():
			m.log.Warn("sandbox infra process is gone; marking not ready", "sandbox", sb.ID, "pid", sb.Pid)
			sb.State = store.StateNotReady
			if err := m.put(sb); err != nil {
				errs = append(errs, err)
			}
		}
		known[sb.ID] = true
	}
	if pins, err := netns.ListPins(m.netnsDir); err == nil {
		for _, ns := range pins {
			if !known[ns.Name()] {
				m.log.Info("removing orphaned netns pin", "path", ns.Path())
				errs = append(errs, ns.Remove())
			}
		}
	}
	if dirs, err := os.ReadDir(m.stateDir); err == nil {
		for _, d := range dirs {
			if !known[d.Name()] {
				path := filepath.Join(m.stateDir, d.Name())
				m.log.Info("removing orphaned sandbox dir", "path", path)
				errs = append(errs, unmountAll(path), os.RemoveAll(path))
			}
		}
	}
	var valid []string
	for id := range known {
		valid = append(valid, id)
	}
	errs = append(errs, m.network.GC(ctx, valid))
	return errors.Join(errs...)
}
