package container

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/shim"
	"github.com/crid-dev/crid/pkg/store"
)

// MaxExecSyncOutput caps ExecSync's stdout and stderr together: kubelet
// (cri-client) takes responses of at most 16 MiB, so both streams share
// that, less room for the rest of the message. What does not fit is read
// and dropped, so the command never blocks on it.
const MaxExecSyncOutput = 16<<20 - 64<<10

// Exec runs cmd in a running container with the given streams and
// returns its exit code. Cancelling ctx (the client went away) kills it.
func (m *Manager) Exec(ctx context.Context, idOrPrefix string, cmd []string, tty bool, sio shim.StreamIO) (int32, error) {
	if len(cmd) == 0 {
		return 0, fmt.Errorf("exec: a command is required: %w", errdefs.ErrInvalidArgument)
	}
	c, err := m.runningContainer(idOrPrefix)
	if err != nil {
		return 0, err
	}
	req := &shim.Request{Op: shim.OpExec, Exec: &shim.ExecRequest{Args: cmd, Tty: tty, Stdin: sio.Stdin != nil}}
	exit, err := shim.Stream(ctx, m.Bundle(c.ID), req, sio)
	if err != nil {
		return 0, m.streamError(c, "exec in", err)
	}
	return exit.Code, nil
}

// ExecSync runs cmd to completion and returns its output (capped at
// MaxExecSyncOutput for both streams together) and exit code. After timeout (0 = none) the
// command is killed and the error wraps ErrDeadlineExceeded.
func (m *Manager) ExecSync(ctx context.Context, idOrPrefix string, cmd []string, timeout time.Duration) (stdout, stderr []byte, code int32, err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out, errOut := &cappedBuffer{max: MaxExecSyncOutput}, &cappedBuffer{max: MaxExecSyncOutput}
	code, err = m.Exec(ctx, idOrPrefix, cmd, false, shim.StreamIO{Stdout: out, Stderr: errOut})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
			return nil, nil, 0, fmt.Errorf("command %q timed out after %s and was killed: %w", cmd, timeout, errdefs.ErrDeadlineExceeded)
		}
		return nil, nil, 0, err
	}
	stdout, stderr = fitOutput(out.b, errOut.b, MaxExecSyncOutput)
	return stdout, stderr, code, nil
}

// fitOutput cuts stdout and stderr to max bytes together. A stream that
// fits in half keeps all of it (a probe's short error message survives a
// flood on the other stream); otherwise each gets half.
func fitOutput(out, errOut []byte, max int) ([]byte, []byte) {
	if len(out)+len(errOut) <= max {
		return out, errOut
	}
	half := max / 2
	switch {
	case len(errOut) <= half:
		return out[:max-len(errOut)], errOut
	case len(out) <= half:
		return out, errOut[:max-len(out)]
	default:
		return out[:half], errOut[:max-half]
	}
}

// Attach connects streams to a running container's stdio until it exits
// or ctx ends.
func (m *Manager) Attach(ctx context.Context, idOrPrefix string, sio shim.StreamIO) error {
	c, err := m.runningContainer(idOrPrefix)
	if err != nil {
		return err
	}
	req := &shim.Request{Op: shim.OpAttach, Attach: &shim.AttachRequest{Stdin: sio.Stdin != nil, Stdout: sio.Stdout != nil, Stderr: sio.Stderr != nil}}
	if _, err := shim.Stream(ctx, m.Bundle(c.ID), req, sio); err != nil {
		return m.streamError(c, "attach to", err)
	}
	return nil
}

func (m *Manager) runningContainer(idOrPrefix string) (*store.Container, error) {
	c, err := m.Resolve(idOrPrefix)
	if err != nil {
		return nil, err
	}
	if c.State != store.StateRunning {
		return nil, fmt.Errorf("container %s is not running (%s): %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

func (m *Manager) streamError(c *store.Container, what string, err error) error {
	if errors.Is(err, shim.ErrNotRunning) || errors.Is(err, shim.ErrUnreachable) {
		return fmt.Errorf("%s container %s: it is not running: %w", what, c.ID, errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("%s container %s: %w", what, c.ID, err)
}

// cappedBuffer keeps the first max bytes written and drops the rest.
type cappedBuffer struct {
	b   []byte
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
