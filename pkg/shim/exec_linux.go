package shim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"
)

func reply(conn net.Conn, r *Response) { json.NewEncoder(conn).Encode(r) }

// running refuses streams into a container that is not running.
func (s *shim) running() *Response {
	if s.exited() != nil || s.initExited.Load() {
		return &Response{Error: "container is not running (it has exited)", Code: CodeNotRunning}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return &Response{Error: "container is not running (created, not started)", Code: CodeNotRunning}
	}
	return nil
}

// exec runs a process in the container through the runtime (detached, so
// that it becomes the shim's child) and relays its stdio over conn until
// it exits. If the client goes away first, the process is killed.
func (s *shim) exec(conn net.Conn, in io.Reader, req *ExecRequest) {
	if req == nil || len(req.Args) == 0 {
		reply(conn, &Response{Error: "exec: a command is required", Code: CodeInvalid})
		return
	}
	if r := s.running(); r != nil {
		reply(conn, r)
		return
	}
	spec, err := readSpec(s.opts.Bundle)
	if err != nil {
		reply(conn, &Response{Error: err.Error()})
		return
	}
	proc := *spec.Process
	proc.Args, proc.Terminal = req.Args, req.Tty
	proc.ConsoleSize = nil
	var idb [8]byte
	rand.Read(idb[:])
	pidFile := filepath.Join(s.opts.Bundle, "exec-"+hex.EncodeToString(idb[:])+".pid")
	defer os.Remove(pidFile)
	opts := &runc.ExecOpts{PidFile: pidFile, Detach: true}
	var pio runc.IO
	var sock *runc.Socket
	if req.Tty {
		if sock, err = runc.NewTempConsoleSocket(); err != nil {
			reply(conn, &Response{Error: fmt.Sprintf("exec: console socket: %v", err)})
			return
		}
		defer sock.Close()
		opts.ConsoleSocket = sock
	} else {
		pio, err = runc.NewPipeIO(int(proc.User.UID), int(proc.User.GID), func(o *runc.IOOption) { o.OpenStdin = req.Stdin })
		if err != nil {
			reply(conn, &Response{Error: fmt.Sprintf("exec: stdio pipes: %v", err)})
			return
		}
		defer pio.Close()
		opts.IO = pio
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started := time.Now()
	if err := s.runtime("exec", func() error { return s.runc.Exec(ctx, s.opts.ID, proc, opts) }); err != nil {
		resp := &Response{Error: err.Error()}
		if s.initExited.Load() {
			resp.Code = CodeNotRunning
		}
		reply(conn, resp)
		return
	}
	var con console.Console
	if req.Tty {
		if con, err = sock.ReceiveMaster(); err != nil {
			reply(conn, &Response{Error: fmt.Sprintf("exec: receive console: %v", err)})
			return
		}
		defer con.Close()
	}
	data, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || perr != nil {
		reply(conn, &Response{Error: fmt.Sprintf("exec: read pid: %v %v", err, perr)})
		return
	}
	exitCh := s.reaper.subscribe(pid, started)
	reply(conn, &Response{Pid: pid})

	fw := &frameWriter{w: conn}
	var copying sync.WaitGroup
	var outputs []io.Closer
	relay := func(t byte, r io.Reader) {
		copying.Add(1)
		go func() {
			defer copying.Done()
			buf := make([]byte, 32*1024)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					fw.write(t, buf[:n]) // a gone client: keep draining, the process is killed
				}
				if err != nil {
					return
				}
			}
		}()
	}
	var stdin io.WriteCloser
	if req.Tty {
		relay(frameStdout, con)
		if req.Stdin {
			stdin = con
		}
	} else {
		pio.(runc.StartCloser).CloseAfterStart()
		relay(frameStdout, pio.Stdout())
		relay(frameStderr, pio.Stderr())
		outputs = append(outputs, pio.Stdout(), pio.Stderr())
		if req.Stdin {
			stdin = pio.Stdin()
		}
	}
	var exited atomic.Bool
	go func() {
		s.readInput(in, stdin, con, func() {
			if stdin != nil && !req.Tty {
				stdin.Close()
			}
		})
		// The client is gone (or sent all it had and closed): a process
		// it no longer watches must not linger.
		if !exited.Load() {
			killTree(pid)
		}
	}()
	e := <-exitCh
	exited.Store(true)
	drained := make(chan struct{})
	go func() { copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(ioDrainTimeout):
		// Processes it left behind hold the output open.
		for _, c := range outputs {
			c.Close()
		}
		if con != nil {
			con.Close()
		}
	}
	exit := &Exit{Pid: pid, Code: int32(e.Status), FinishedAt: e.Timestamp.UTC()}
	if e.Status > 128 {
		exit.Signal = e.Status - 128
	}
	data, _ = json.Marshal(exit)
	fw.write(frameExit, data)
}

// readInput applies a client's input frames until its connection ends:
// stdin data, terminal resizes, and the end of stdin.
func (s *shim) readInput(in io.Reader, stdin io.Writer, con console.Console, closeStdin func()) {
	buf := make([]byte, 32*1024)
	for {
		t, p, err := readFrame(in, buf)
		if err != nil {
			return
		}
		switch t {
		case frameStdin:
			if stdin != nil {
				stdin.Write(p)
			}
		case frameResize:
			if con != nil && len(p) == 4 {
				con.Resize(console.WinSize{Width: binary.BigEndian.Uint16(p[:2]), Height: binary.BigEndian.Uint16(p[2:])})
			}
		case frameCloseStdin:
			closeStdin()
		}
	}
}

// attachClient is one attached connection: output frames queue up for
// it and are dropped when it cannot keep up, so that a slow client never
// blocks the container's output or its log.
type attachClient struct {
	fw             *frameWriter
	stdout, stderr bool
	ch             chan attachFrame
}

type attachFrame struct {
	t byte
	p []byte
}

// tee returns the writer that copies a stream's output to attached clients.
func (s *shim) tee(stream string) io.Writer {
	t := frameStdout
	if stream == StreamStderr {
		t = frameStderr
	}
	return teeWriter{s: s, t: t}
}

type teeWriter struct {
	s *shim
	t byte
}

func (w teeWriter) Write(p []byte) (int, error) {
	w.s.attachMu.Lock()
	defer w.s.attachMu.Unlock()
	for c := range w.s.attached {
		if (w.t == frameStdout && !c.stdout) || (w.t == frameStderr && !c.stderr) {
			continue
		}
		select {
		case c.ch <- attachFrame{w.t, append([]byte(nil), p...)}:
		default:
		}
	}
	return len(p), nil
}

// attach connects a client to the container's live stdio: its output from
// now on, its stdin (when the container keeps stdin open), and its
// terminal size. It ends when the container exits or the client goes.
func (s *shim) attach(conn net.Conn, in io.Reader, req *AttachRequest) {
	if req == nil {
		req = &AttachRequest{Stdout: true, Stderr: true}
	}
	if s.exited() != nil {
		reply(conn, &Response{Error: "container is not running (it has exited)", Code: CodeNotRunning})
		return
	}
	c := &attachClient{fw: &frameWriter{w: conn}, stdout: req.Stdout, stderr: req.Stderr, ch: make(chan attachFrame, 256)}
	s.attachMu.Lock()
	if s.attached == nil {
		s.attached = map[*attachClient]bool{}
	}
	s.attached[c] = true
	s.attachMu.Unlock()
	defer func() {
		s.attachMu.Lock()
		delete(s.attached, c)
		close(c.ch) // under the lock: the tee sends under it too
		s.attachMu.Unlock()
	}()
	reply(conn, &Response{Pid: s.pid})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for f := range c.ch {
			if c.fw.write(f.t, f.p) != nil {
				return
			}
			if f.t == frameExit {
				return
			}
		}
	}()
	var stdin io.Writer
	if req.Stdin && s.stdin != nil {
		stdin = s.stdin
	}
	closeStdin := func() {
		if stdin != nil && s.opts.StdinOnce && !s.opts.Tty {
			s.stdinOnce.Do(func() { s.stdin.Close() })
		}
	}
	clientGone := make(chan struct{})
	go func() {
		s.readInput(in, stdin, s.console, closeStdin)
		close(clientGone)
	}()
	select {
	case <-s.done:
		data, _ := json.Marshal(s.exited())
		s.attachMu.Lock()
		delete(s.attached, c)
		s.attachMu.Unlock()
		select {
		case c.ch <- attachFrame{frameExit, data}:
		case <-time.After(time.Second):
		}
		select {
		case <-writerDone:
		case <-time.After(ioDrainTimeout):
		}
	case <-clientGone:
		closeStdin()
	case <-writerDone:
	}
}
