//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Pod sandboxes need Linux namespaces; elsewhere the package builds (for
// its pure logic and tests) but cannot run a pod.

var (
	errNoSandboxes = fmt.Errorf("pod sandboxes: %w", errdefs.ErrUnimplemented)
	errProcGone    = errors.New("process is gone")
)

type watchedProc struct {
	pid   int
	start uint64
	done  chan struct{}
}

func watchProc(pid int, start uint64, child bool) (*watchedProc, error) { return nil, errProcGone }
func (w *watchedProc) exited() bool                                     { return true }
func (w *watchedProc) stop(grace time.Duration) error                   { return nil }

type foundInfra struct {
	id    string
	pid   int
	start uint64
}

func scanInfras(state string) []foundInfra { return nil }

type infraSpec struct {
	id, netnsPath, hostname string
	sysctls                 map[string]string
	newUTS, newIPC, newPID  bool
}

func (m *Manager) startInfra(ctx context.Context, s infraSpec) (*watchedProc, error) {
	return nil, errNoSandboxes
}

// InfraMain is the `crid infra` entry point (Linux only).
func InfraMain(args []string) int { return 1 }

func pinNamespaces(dir string, pid int, kinds []string) error { return errNoSandboxes }
func mountShm(path string, size int64) error                  { return errNoSandboxes }
func unmountAll(dir string) error                             { return nil }
func joinCgroup(path string, pid int, record string) error    { return errNoSandboxes }
func removeCgroup(path, record string) error                  { return nil }
