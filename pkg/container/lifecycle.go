package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/shim"
	"github.com/crid-dev/crid/pkg/store"
)

// killWait bounds the wait for an exit after SIGKILL; a container that
// survives it is stuck in the kernel (D state), which the caller hears of.
const killWait = 30 * time.Second

// shimExitWait bounds the wait for a shim to exit once its container has
// (it records the exit, answers crid and goes within milliseconds).
const shimExitWait = 2 * time.Second

// Start starts a created container.
func (m *Manager) Start(ctx context.Context, idOrPrefix string) error {
	c, unlock, err := m.lockExisting(idOrPrefix)
	if err != nil {
		return err
	}
	defer unlock()
	switch c.State {
	case store.StateCreated:
	case store.StateRunning:
		return fmt.Errorf("container %s is already running: %w", c.ID, errdefs.ErrFailedPrecondition)
	default:
		return fmt.Errorf("container %s is %s, not created: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	startedAt := time.Now().UTC()
	// Not cancelled with the call: a start the runtime carries out must be
	// recorded, or the container would run while reported as created.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	if _, err := shim.Call(sctx, m.Bundle(c.ID), &shim.Request{Op: shim.OpStart}); err != nil {
		return fmt.Errorf("start container %s: %w", c.ID, err)
	}
	c.State, c.StartedAt = store.StateRunning, startedAt
	if err := m.put(c); err != nil {
		return err
	}
	m.log.Info("container started", "container", c.ID, "pid", c.Pid)
	m.publish(c.ID, c.SandboxID, EventStarted)
	return nil
}

// lockExisting resolves and locks a container, re-reading its record
// under the lock.
func (m *Manager) lockExisting(idOrPrefix string) (*store.Container, func(), error) {
	c, err := m.Resolve(idOrPrefix)
	if err != nil {
		return nil, nil, err
	}
	unlock := m.lock(c.ID)
	if c, err = m.Get(c.ID); err != nil {
		unlock()
		return nil, nil, err
	}
	return c, unlock, nil
}

// Stop stops a container: its stop signal, then SIGKILL to all its
// processes after timeout (at once when timeout is 0). It returns once the
// exit is recorded. Stopping an exited or unknown container does nothing,
// as the CRI asks (kubelet retries stops).
func (m *Manager) Stop(ctx context.Context, idOrPrefix string, timeout time.Duration) error {
	c, unlock, err := m.lockExisting(idOrPrefix)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	unlock() // the exit is recorded under the lock: never wait holding it
	if c.State == store.StateExited {
		return nil
	}
	exited := m.exitChan(c.ID)
	m.watch(c.ID)
	if timeout > 0 && c.State == store.StateRunning {
		sig := c.StopSignal
		if sig == 0 {
			sig = int(unix.SIGTERM)
		}
		if err := m.kill(ctx, c, sig, false); err != nil {
			return err
		}
		if done, err := waitExit(ctx, exited, timeout); done || err != nil {
			return err
		}
		m.log.Info("container did not stop in time; killing it", "container", c.ID, "timeout", timeout)
	}
	if err := m.kill(ctx, c, int(unix.SIGKILL), true); err != nil {
		return err
	}
	if done, err := waitExit(ctx, exited, killWait); done || err != nil {
		return err
	}
	return fmt.Errorf("container %s did not exit %s after SIGKILL: %w", c.ID, killWait, errdefs.ErrUnavailable)
}

// waitExit waits up to d for exited to close: done tells it did.
func waitExit(ctx context.Context, exited <-chan struct{}, d time.Duration) (done bool, err error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-exited:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, nil
	}
}

// kill signals the container through its shim. A container that already
// exited, or whose shim is gone (the watcher records that), is no error.
func (m *Manager) kill(ctx context.Context, c *store.Container, sig int, all bool) error {
	_, err := shim.Call(ctx, m.Bundle(c.ID), &shim.Request{Op: shim.OpKill, Signal: sig, All: all})
	if err == nil || errors.Is(err, shim.ErrNotRunning) || errors.Is(err, shim.ErrUnreachable) {
		return nil
	}
	return fmt.Errorf("signal container %s: %w", c.ID, err)
}

// Remove removes a container, killing it first if it runs, with its
// rootfs, bundle and writable layer. Removing an unknown container succeeds.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	c, err := m.Resolve(idOrPrefix)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.State != store.StateExited {
		if err := m.Stop(ctx, c.ID, 0); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: %w", c.ID, err)
		}
	}
	unlock := m.lock(c.ID)
	defer unlock()
	if c, err = m.Get(c.ID); errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if err := m.destroy(c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if err := m.db.Update(func(tx *store.Tx) error { return tx.DeleteContainer(c.ID) }); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	m.forget(c.ID)
	m.log.Info("container removed", "container", c.ID)
	m.publish(c.ID, c.SandboxID, EventDeleted)
	if _, err := m.images.Lookup(c.ImageID); errdefs.IsNotFound(err) {
		// Its image was removed while it ran: its layers can go now.
		if err := m.images.GC(context.WithoutCancel(ctx)); err != nil {
			m.log.Warn("image garbage collection", "error", err)
		}
	}
	return nil
}

// destroy ends whatever is left of a container (shim, processes, runtime
// state) and removes its rootfs mount, bundle and writable layer.
func (m *Manager) destroy(c *store.Container) error {
	bundle := m.Bundle(c.ID)
	ctx, cancel := context.WithTimeout(context.Background(), killWait)
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := shim.Call(sctx, bundle, &shim.Request{Op: shim.OpState})
	scancel()
	switch {
	case err == nil && resp.State != "exited":
		shim.Call(ctx, bundle, &shim.Request{Op: shim.OpKill, Signal: int(unix.SIGKILL), All: true})
		shim.Call(ctx, bundle, &shim.Request{Op: shim.OpWait})
	case err != nil && isShimOf(c.ShimPid, c.ID):
		// A shim that does not answer is stuck in the runtime's create:
		// end it with everything it started (its own process group).
		m.log.Warn("killing a container shim that does not answer", "container", c.ID, "pid", c.ShimPid, "error", err)
		unix.Kill(-c.ShimPid, unix.SIGKILL)
	}
	waitShimGone(c.ShimPid, c.ID, shimExitWait)
	if r, err := m.runtimeClient(c.RuntimeHandler); err == nil {
		// Without a shim (it died, or never got going) the runtime may
		// still hold the container.
		if _, err := r.State(ctx, c.ID); err == nil {
			if err := r.Delete(ctx, c.ID, &runc.DeleteOpts{Force: true}); err != nil {
				m.log.Warn("runtime delete", "container", c.ID, "error", err)
			}
		}
	}
	var errs []error
	if err := unmountRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		errs = append(errs, err)
	}
	if err := unmountImageVolumes(bundle); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []string{bundle, m.layerDir(c.ID)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// watch follows a container's shim until the container exits, then
// records the exit. One watcher per container.
func (m *Manager) watch(id string) {
	m.mu.Lock()
	if m.watched[id] {
		m.mu.Unlock()
		return
	}
	m.watched[id] = true
	m.mu.Unlock()
	m.exitChan(id)
	go func() {
		bundle := m.Bundle(id)
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			resp, err := shim.Call(context.Background(), bundle, &shim.Request{Op: shim.OpWait})
			if err == nil && resp.Exit != nil {
				m.recordExit(id, resp.Exit)
				return
			}
			if e, rerr := shim.ReadExit(bundle); rerr == nil {
				m.recordExit(id, e)
				return
			}
			if !m.shimAlive(id) {
				m.recordExit(id, m.shimLost(id, err))
				return
			}
			// The shim lives: a passing failure (fds, memory) must not
			// cost its container.
			m.log.Warn("waiting on a container's shim failed; retrying", "container", id, "error", err)
			time.Sleep(backoff)
		}
	}()
}

// shimAlive tells whether the shim recorded for container id still runs.
func (m *Manager) shimAlive(id string) bool {
	c, err := m.Get(id)
	if err != nil || c.ShimPid <= 0 {
		return false
	}
	return isShimOf(c.ShimPid, id)
}

// isShimOf tells whether pid is a live shim (not a zombie, not a reused
// pid) of container id.
func isShimOf(pid int, id string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "\x00"+id)
}

// shimLost handles a shim that vanished without recording the exit: the
// container's processes, now without a parent that watches them, are
// killed through the runtime, and the exit is recorded as unknown.
func (m *Manager) shimLost(id string, cause error) *shim.Exit {
	m.log.Error("container shim is gone without an exit record; killing the container", "container", id, "error", cause)
	if c, err := m.Get(id); err == nil {
		if r, err := m.runtimeClient(c.RuntimeHandler); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), killWait)
			r.Delete(ctx, id, &runc.DeleteOpts{Force: true})
			cancel()
		}
	}
	return &shim.Exit{Code: 255, FinishedAt: time.Now().UTC(), Message: "the container's shim died without recording its exit"}
}

// recordExit records an exit once and wakes those waiting for it.
func (m *Manager) recordExit(id string, e *shim.Exit) {
	unlock := m.lock(id)
	defer unlock()
	c, err := m.Get(id)
	if err == nil && c.State != store.StateExited && c.State != store.StateCreating {
		c.State, c.ExitCode, c.FinishedAt = store.StateExited, e.Code, e.FinishedAt.UTC()
		c.Reason, c.Message = e.Reason(), e.Message
		if err := m.put(c); err != nil {
			m.log.Error("record container exit", "container", id, "error", err)
		} else {
			m.log.Info("container exited", "container", id, "exitCode", e.Code, "reason", c.Reason)
			m.publish(id, c.SandboxID, EventStopped)
		}
	}
	ch := m.exitChan(id)
	m.mu.Lock()
	select {
	case <-ch:
	default:
		close(ch)
	}
	delete(m.watched, id)
	m.mu.Unlock()
}

// StopAll kills every container of a pod sandbox (StopPodSandbox: kubelet
// already gave them their grace period).
func (m *Manager) StopAll(ctx context.Context, sandboxID string) error {
	return m.eachOf(sandboxID, func(c *store.Container) error {
		if c.State == store.StateExited {
			return nil
		}
		err := m.Stop(ctx, c.ID, 0)
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// RemoveAll removes every container of a pod sandbox.
func (m *Manager) RemoveAll(ctx context.Context, sandboxID string) error {
	return m.eachOf(sandboxID, func(c *store.Container) error { return m.Remove(ctx, c.ID) })
}

func (m *Manager) eachOf(sandboxID string, fn func(*store.Container) error) error {
	list, err := m.ofSandbox(sandboxID)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(list))
	for i, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(c)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitShimGone waits until the shim with pid (checked to be the shim of
// container id, so a reused pid is not waited for) has exited.
func waitShimGone(pid int, id string, limit time.Duration) {
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && isShimOf(pid, id) {
		time.Sleep(2 * time.Millisecond)
	}
}
