// Package shim is crid's per-container shim: a small process, started
// detached from crid, that creates the container through the OCI runtime
// (go-runc), stays its parent (child subreaper), owns its stdio, writes its
// output to the CRI log, records its exit durably and answers crid over a
// control socket. Containers and their shims outlive crid restarts.
//
// The control protocol is one JSON request and one JSON response per
// connection; "wait" holds its connection until the container exits.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Files in a container's bundle directory.
const (
	SocketName = "shim.sock"
	ExitName   = "exit.json"
	ConfigName = "config.json"
	ShimLog    = "shim.log"
	runcLog    = "runc.log"
	pidName    = "init.pid"
)

// Ops of the control protocol.
const (
	OpStart  = "start"
	OpKill   = "kill"
	OpWait   = "wait"
	OpState  = "state"
	OpUpdate = "update"
	OpReopen = "reopen-log"
)

// Request is one control request.
type Request struct {
	Op        string                `json:"op"`
	Signal    int                   `json:"signal,omitempty"`
	All       bool                  `json:"all,omitempty"` // kill every process of the container
	Resources *specs.LinuxResources `json:"resources,omitempty"`
	Exec      *ExecRequest          `json:"exec,omitempty"`
	Attach    *AttachRequest        `json:"attach,omitempty"`
}

// Response answers a Request.
type Response struct {
	Error string  `json:"error,omitempty"`
	Pid   int     `json:"pid,omitempty"`
	State string  `json:"state,omitempty"` // created, running, exited
	Exit  *Exit   `json:"exit,omitempty"`
	Code  ErrCode `json:"code,omitempty"`
	// StartedAt is when the shim started the container (zero: not started).
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// ErrCode classifies a failed request for crid's error mapping.
type ErrCode string

// Error codes.
const (
	CodeNotRunning ErrCode = "not-running" // the container has exited
	CodeInvalid    ErrCode = "invalid"
)

// Exit is a container's exit, as the shim records it.
type Exit struct {
	Pid        int       `json:"pid"`
	Code       int32     `json:"exitCode"` // 128+signal for a killed init
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	Message    string    `json:"message,omitempty"`
}

// Reason is the CRI reason for the exit.
func (e *Exit) Reason() string {
	switch {
	case e.OOMKilled:
		return "OOMKilled"
	case e.Code == 0:
		return "Completed"
	default:
		return "Error"
	}
}

// ErrNotRunning: the container has already exited.
var ErrNotRunning = errors.New("container is not running")

// ErrUnreachable: no shim answers on the socket (it is gone).
var ErrUnreachable = errors.New("shim is not running")

// Call sends one request to the shim of the bundle dir and returns its
// response. The socket is reached through /proc/self/fd so that bundle
// paths longer than a socket address still work.
func Call(ctx context.Context, bundle string, req *Request) (*Response, error) {
	conn, err := dial(ctx, bundle)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("shim %s: send: %w", req.Op, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("shim %s: %w (%v)", req.Op, ErrUnreachable, err)
	}
	if resp.Error != "" {
		if resp.Code == CodeNotRunning {
			return &resp, fmt.Errorf("%s: %w", resp.Error, ErrNotRunning)
		}
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

func dial(ctx context.Context, bundle string) (net.Conn, error) {
	dir, err := os.Open(bundle)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer dir.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), SocketName))
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		return nil, fmt.Errorf("dial shim: %w", err)
	}
	return conn, nil
}

// ReadExit reads the exit record of a bundle; os.ErrNotExist if the
// container has not exited (or its shim died before recording it).
func ReadExit(bundle string) (*Exit, error) {
	data, err := os.ReadFile(filepath.Join(bundle, ExitName))
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("exit record %s: %w", bundle, err)
	}
	return &e, nil
}

// writeExit records e durably: a temp file, fsynced, renamed, dir fsynced.
func writeExit(bundle string, e *Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, ExitName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(bundle, ExitName)); err != nil {
		return err
	}
	if d, err := os.Open(bundle); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
