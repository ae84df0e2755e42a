package shim

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// reaper reaps every child of the shim (the runtime's commands, the
// container init re-parented to it, orphans of a shared PID namespace) on
// SIGCHLD and hands exits to whoever waits for that pid. It is go-runc's
// process monitor: exec.Cmd's own wait would race with the reaping.
type reaper struct {
	mu        sync.Mutex
	subs      map[int]chan runc.Exit
	unclaimed map[int]runc.Exit // exits nobody waited for yet (bounded)
}

const maxUnclaimed = 256

func newReaper() *reaper {
	r := &reaper{subs: map[int]chan runc.Exit{}, unclaimed: map[int]runc.Exit{}}
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.dispatch(runc.Exit{Timestamp: time.Now(), Pid: pid, Status: exitStatus(ws)})
	}
}

// exitStatus is the shell convention: the exit code, or 128+signal.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func (r *reaper) dispatch(e runc.Exit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.subs[e.Pid]; ok {
		delete(r.subs, e.Pid)
		ch <- e
		close(ch)
		return
	}
	if len(r.unclaimed) >= maxUnclaimed {
		for pid := range r.unclaimed {
			delete(r.unclaimed, pid)
			break
		}
	}
	r.unclaimed[e.Pid] = e
}

// subscribeLocked returns a channel that receives pid's exit, also one
// reaped before the call but not before since (an older exit is of an
// earlier process that had the same pid). Callers hold r.mu.
func (r *reaper) subscribeLocked(pid int, since time.Time) chan runc.Exit {
	ch := make(chan runc.Exit, 1)
	if e, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		if !e.Timestamp.Before(since) {
			ch <- e
			close(ch)
			return ch
		}
	}
	r.subs[pid] = ch
	return ch
}

// subscribe is subscribeLocked for a process started at or after since by
// someone else (the runtime), which made it the shim's child.
func (r *reaper) subscribe(pid int, since time.Time) chan runc.Exit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subscribeLocked(pid, since)
}

// Start starts c, holding the lock so that its exit cannot be dispatched
// before the subscription exists.
func (r *reaper) Start(c *exec.Cmd) (chan runc.Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := time.Now() // an unclaimed exit of this pid is an older process's
	if err := c.Start(); err != nil {
		return nil, err
	}
	return r.subscribeLocked(c.Process.Pid, since), nil
}

// StartLocked is Start: the shim sets no parent-death signal.
func (r *reaper) StartLocked(c *exec.Cmd) (chan runc.Exit, error) { return r.Start(c) }

// Wait waits for the exit, then lets exec.Cmd finish its output copying
// (its own wait fails with ECHILD, which is expected).
func (r *reaper) Wait(c *exec.Cmd, ec chan runc.Exit) (int, error) {
	e := <-ec
	_ = c.Wait()
	return e.Status, nil
}
