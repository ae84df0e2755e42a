package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/store"
)

// Recover reconciles the records with the node after a restart, before
// crid serves:
//   - a sandbox still "creating" was interrupted: roll it back fully (its
//     infra is found by command line, CNI DEL works from libcni's cache or,
//     if ADD never returned, from the current config);
//   - a ready sandbox whose infra is alive is watched again; one whose infra
//     died becomes not ready (its network stays up: kubelet stops it);
//   - infra processes, netns pins and sandbox dirs of no record are removed,
//     and CNI allocations of unknown sandboxes are released (CNI GC).
func (m *Manager) Recover(ctx context.Context) error {
	var all []*store.Sandbox
	if err := m.db.View(func(tx *store.Tx) (err error) { all, err = tx.Sandboxes(); return err }); err != nil {
		return err
	}
	found := map[string][]foundInfra{}
	for _, f := range scanInfras(m.state) {
		found[f.id] = append(found[f.id], f)
	}
	var errs []error
	known := map[string]bool{}
	for _, sb := range all {
		known[sb.ID] = true
		if sb.State == store.StateCreating {
			m.log.Info("rolling back pod sandbox interrupted while being created", "sandbox", sb.ID)
			m.killInfras(found[sb.ID], 0)
			if err := m.teardown(ctx, sb, true, true); err != nil {
				errs = append(errs, err)
			} else {
				delete(known, sb.ID)
			}
			continue
		}
		var p *watchedProc
		if sb.Pid != 0 {
			p, _ = watchProc(sb.Pid, sb.PidStart, false)
		}
		m.killInfras(found[sb.ID], sb.Pid) // strays of an earlier attempt
		switch {
		case p != nil:
			m.setInfra(sb.ID, p) // also when not ready: Stop/Remove end it
		case sb.State == store.StateReady:
			m.log.Warn("pod sandbox infra process is gone; marking not ready", "sandbox", sb.ID, "pid", sb.Pid)
			sb.State = store.StateNotReady
			if err := m.put(sb); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for id, procs := range found {
		if !known[id] {
			m.log.Info("killing infra process of no pod sandbox", "sandbox", id)
			m.killInfras(procs, 0)
		}
	}
	pins, err := netns.ListPins(m.netnsDir)
	errs = append(errs, err)
	for _, ns := range pins {
		if !known[ns.Name()] {
			m.log.Info("removing orphaned netns pin", "path", ns.Path())
			errs = append(errs, ns.Remove())
		}
	}
	if dirs, err := os.ReadDir(m.stateDir); err == nil {
		for _, d := range dirs {
			if !known[d.Name()] {
				path := filepath.Join(m.stateDir, d.Name())
				m.log.Info("removing orphaned pod sandbox dir", "path", path)
				errs = append(errs, unmountAll(path), removeCgroup("", filepath.Join(path, "cgroups.json")), os.RemoveAll(path))
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

// killInfras kills the found infra processes other than keep.
func (m *Manager) killInfras(procs []foundInfra, keep int) {
	for _, f := range procs {
		if f.pid == keep {
			continue
		}
		p, err := watchProc(f.pid, f.start, false)
		if err != nil {
			continue
		}
		if err := p.stop(0); err != nil {
			m.log.Warn("cannot kill stray infra process", "sandbox", f.id, "pid", f.pid, "error", err)
		}
	}
}
