package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/shim"
	"github.com/crid-dev/crid/pkg/store"
)

// Recover brings the records in line with reality after a start: live
// shims are followed again, exits that happened while crid was down are
// recorded from the shims' exit records, half-done creates are rolled
// back, and bundles, layers and shims without a record are removed.
func (m *Manager) Recover(ctx context.Context) error {
	var all []*store.Container
	if err := m.db.View(func(tx *store.Tx) (err error) { all, err = tx.Containers(); return err }); err != nil {
		return fmt.Errorf("recover containers: %w", err)
	}
	known := map[string]bool{}
	var errs []error
	for _, c := range all {
		known[c.ID] = true
		switch c.State {
		case store.StateCreating:
			m.log.Info("rolling back a container create interrupted by a restart", "container", c.ID)
			if err := m.rollback(c); err != nil {
				errs = append(errs, err)
			}
		case store.StateCreated, store.StateRunning:
			m.reattach(ctx, c)
		}
	}
	errs = append(errs, m.removeOrphans(known))
	return errors.Join(errs...)
}

// reattach follows a container's shim again, or records the exit it
// left behind, or that it is lost.
func (m *Manager) reattach(ctx context.Context, c *store.Container) {
	bundle := m.Bundle(c.ID)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := shim.Call(cctx, bundle, &shim.Request{Op: shim.OpState})
	cancel()
	switch {
	case err == nil && resp.State != "exited":
		if resp.State == "running" && c.State == store.StateCreated {
			// crid died between starting it and recording that.
			c.State, c.StartedAt = store.StateRunning, resp.StartedAt
			if err := m.put(c); err != nil {
				m.log.Error("record a start interrupted by a restart", "container", c.ID, "error", err)
			}
		}
		m.watch(c.ID)
	case err == nil && resp.Exit != nil:
		m.recordExit(c.ID, resp.Exit)
	default:
		if e, rerr := shim.ReadExit(bundle); rerr == nil {
			m.log.Info("container exited while crid was down", "container", c.ID, "exitCode", e.Code)
			m.recordExit(c.ID, e)
			return
		}
		if isShimOf(c.ShimPid, c.ID) {
			// Alive but not answering yet: the watcher keeps trying.
			m.watch(c.ID)
			return
		}
		m.recordExit(c.ID, m.shimLost(c.ID, err))
	}
}

// removeOrphans removes bundles, writable layers and shims of containers
// that have no record (e.g. removed while a step failed, or a crash in the
// middle of a removal).
func (m *Manager) removeOrphans(known map[string]bool) error {
	var errs []error
	bundles, _ := os.ReadDir(filepath.Join(m.o.State, "containers"))
	for _, e := range bundles {
		if known[e.Name()] {
			continue
		}
		m.log.Info("removing a container bundle without a record", "container", e.Name())
		bundle := m.Bundle(e.Name())
		c := &store.Container{ID: e.Name()}
		if o, err := shim.ReadOptions(bundle); err == nil {
			c.RuntimeHandler = m.handlerFor(o)
		}
		if err := m.destroy(c); err != nil {
			errs = append(errs, err)
		}
	}
	layers, _ := os.ReadDir(filepath.Join(m.o.Root, "containers"))
	for _, e := range layers {
		if !known[e.Name()] {
			if err := os.RemoveAll(m.layerDir(e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for pid, id := range m.scanShims() {
		if !known[id] {
			m.log.Info("killing a shim without a container record", "container", id, "pid", pid)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	return errors.Join(errs...)
}

// handlerFor names the configured handler whose runtime a shim used.
func (m *Manager) handlerFor(o *shim.Options) string {
	for name, rt := range m.o.Runtimes {
		if rt.Path == o.Runtime && rt.Root == o.RuntimeRoot {
			return name
		}
	}
	return ""
}

// scanShims finds this crid's shims (by their command line naming a bundle
// under its state dir): pid → container id.
func (m *Manager) scanShims() map[int]string {
	out := map[int]string{}
	prefix := filepath.Join(m.o.State, "containers") + "/"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		if len(args) < 4 || args[0] != shim.ProcName || args[1] != "shim" {
			continue
		}
		for i := 2; i+1 < len(args); i++ {
			if args[i] == "--bundle" && strings.HasPrefix(args[i+1], prefix) {
				out[pid] = strings.TrimPrefix(args[i+1], prefix)
			}
		}
	}
	return out
}
