package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Options is one shim's job, written to the bundle as shim.json.
type Options struct {
	ID            string `json:"id"`
	Bundle        string `json:"bundle"`
	Runtime       string `json:"runtime"`               // runc-compatible binary
	RuntimeRoot   string `json:"runtimeRoot,omitempty"` // its --root
	SystemdCgroup bool   `json:"systemdCgroup,omitempty"`
	LogPath       string `json:"logPath,omitempty"` // CRI log; "" discards output
	Stdin         bool   `json:"stdin,omitempty"`
	StdinOnce     bool   `json:"stdinOnce,omitempty"`
	Tty           bool   `json:"tty,omitempty"`
}

const optionsName = "shim.json"

// ProcName is argv[0] of every shim, how crid finds shims after a crash.
const ProcName = "crid-shim"

// ReadOptions reads the options a bundle's shim was started with.
func ReadOptions(bundle string) (*Options, error) {
	data, err := os.ReadFile(filepath.Join(bundle, optionsName))
	if err != nil {
		return nil, err
	}
	var o Options
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("parse %s: %w", optionsName, err)
	}
	return &o, nil
}

// Launch starts the shim for o.Bundle (whose config.json is written) with
// exe (crid's own binary) and waits until the container is created.
// It returns the container's init pid and the shim's pid.
func Launch(ctx context.Context, exe string, o Options) (pid, shimPid int, err error) {
	data, err := json.Marshal(o)
	if err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(o.Bundle, optionsName), data, 0o600); err != nil {
		return 0, 0, err
	}
	logf, err := os.OpenFile(filepath.Join(o.Bundle, ShimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, 0, err
	}
	defer rd.Close()
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{ProcName, "shim", "--bundle", o.Bundle, "--id", o.ID},
		Dir:        o.Bundle,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=2", "GOGC=50"},
		Stderr:     logf,
		ExtraFiles: []*os.File{wr},
		// Its own session: signals to crid's process group and crid's
		// death do not reach it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	wr.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("start shim: %w", err)
	}
	// Reap it while crid lives; after a crid restart init does.
	go cmd.Wait()
	type result struct {
		Pid   int    `json:"pid"`
		Error string `json:"error"`
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if err := json.NewDecoder(rd).Decode(&r); err != nil {
			r.Error = "shim exited before reporting: " + tail(filepath.Join(o.Bundle, ShimLog))
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.Error != "" {
			return 0, cmd.Process.Pid, errors.New(r.Error)
		}
		return r.Pid, cmd.Process.Pid, nil
	case <-ctx.Done():
		// The shim goes on; the caller's rollback kills the container.
		return 0, cmd.Process.Pid, ctx.Err()
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	data = bytes.TrimSpace(data)
	if len(data) > 512 {
		data = data[len(data)-512:]
	}
	return string(data)
}

// runtimeError is the runtime's own last error message logged to its JSON
// log from offset from on (during the failed call), which says why;
// go-runc's error only has the exit status.
func runtimeError(logPath string, from int64, err error) string {
	f, ferr := os.Open(logPath)
	if ferr != nil {
		return err.Error()
	}
	defer f.Close()
	if _, serr := f.Seek(from, io.SeekStart); serr != nil {
		return err.Error()
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Level == "error" && entry.Msg != "" {
			last = entry.Msg
		}
	}
	if last == "" {
		return err.Error()
	}
	return strings.TrimSpace(last)
}
