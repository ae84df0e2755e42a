package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/sysinfo"
)

// ioDrainTimeout bounds how long output is still copied after the init
// exited: processes it left behind may hold its stdout open.
const ioDrainTimeout = 2 * time.Second

// shim is one container's shim.
type shim struct {
	opts   Options
	runc   *runc.Runc
	reaper *reaper
	log    *slog.Logger
	logw   *LogWriter

	pid      int
	cgroups  map[string]string // controller ("" = unified) → cgroup dir, for OOM accounting
	stdin    io.WriteCloser    // the container's stdin while it is kept open
	console  console.Console
	outputs  []io.Closer    // read ends of the output, closed after the drain timeout
	copying  sync.WaitGroup // output copiers
	handlers sync.WaitGroup // control connections being answered

	initExited atomic.Bool // the init has exited (its exit may not be recorded yet)

	attachMu  sync.Mutex
	attached  map[*attachClient]bool
	stdinOnce sync.Once // closes stdin once (stdin_once, or the end)

	mu        sync.Mutex
	started   bool
	startedAt time.Time
	exit      *Exit
	done      chan struct{} // closed once exit is recorded
}

// Main is `crid shim --bundle DIR`: crid starts it detached with its
// readiness pipe on fd 3 and stderr on the bundle's shim.log.
func Main(args []string) int {
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	bundle := fs.String("bundle", "", "container bundle directory")
	fs.String("id", "", "container id (for process listings)")
	if err := fs.Parse(args); err != nil || *bundle == "" {
		fmt.Fprintln(os.Stderr, "usage: crid shim --bundle DIR --id ID")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ready := os.NewFile(3, "ready")
	opts, err := ReadOptions(*bundle)
	if err != nil {
		report(ready, 0, err)
		return 1
	}
	log = log.With("container", opts.ID)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		report(ready, 0, fmt.Errorf("become subreaper: %w", err))
		return 1
	}
	// crid tuned the shim's own Go runtime (read at start); the runtime
	// binaries it runs (runc is Go too) get their defaults.
	os.Unsetenv("GOGC")
	os.Unsetenv("GOMAXPROCS")
	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGPIPE)
	// The control socket lets its users exec in the container: root only.
	unix.Umask(0o077)
	s := &shim{opts: *opts, log: log, reaper: newReaper(), done: make(chan struct{})}
	runc.Monitor = s.reaper
	s.runc = &runc.Runc{
		Command: opts.Runtime, Root: opts.RuntimeRoot, SystemdCgroup: opts.SystemdCgroup,
		Log: filepath.Join(opts.Bundle, runcLog), LogFormat: runc.JSON,
	}
	l, err := listen(opts.Bundle)
	if err != nil {
		report(ready, 0, err)
		return 1
	}
	created := time.Now()
	if err := s.create(); err != nil {
		l.Close()
		os.Remove(filepath.Join(opts.Bundle, SocketName))
		report(ready, 0, err)
		return 1
	}
	exitCh := s.reaper.subscribe(s.pid, created)
	go s.serve(l)
	report(ready, s.pid, nil)
	// The shim lives as long as its container, mostly idle: hand back what
	// start-up allocated (the memory is paid once per container).
	debug.FreeOSMemory()
	e := <-exitCh
	s.initExited.Store(true)
	s.finish(e)
	l.Close()
	os.Remove(filepath.Join(opts.Bundle, SocketName))
	// Let connections that were waiting receive the exit before the shim
	// goes (bounded: a stuck client must not keep it).
	handled := make(chan struct{})
	go func() { s.handlers.Wait(); close(handled) }()
	select {
	case <-handled:
	case <-time.After(time.Second):
	}
	return 0
}

// report tells crid the outcome of the create on the readiness pipe.
func report(ready *os.File, pid int, err error) {
	msg := map[string]any{"pid": pid}
	if err != nil {
		msg["error"] = err.Error()
	}
	json.NewEncoder(ready).Encode(msg)
	ready.Close()
}

func listen(bundle string) (net.Listener, error) {
	dir, err := os.Open(bundle)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	path := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), SocketName)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, nil
}

// create runs the runtime's create with the container's stdio wired to
// the log (and stdin kept open when asked), and learns the init pid.
func (s *shim) create() error {
	spec, err := readSpec(s.opts.Bundle)
	if err != nil {
		return err
	}
	if s.logw, err = OpenLog(s.opts.LogPath); err != nil {
		return fmt.Errorf("open container log: %w", err)
	}
	pidFile := filepath.Join(s.opts.Bundle, pidName)
	copts := &runc.CreateOpts{PidFile: pidFile, NoNewKeyring: false}
	ctx := context.Background()
	var pio runc.IO
	var sock *runc.Socket
	if s.opts.Tty {
		if sock, err = runc.NewTempConsoleSocket(); err != nil {
			return fmt.Errorf("console socket: %w", err)
		}
		defer sock.Close()
		copts.ConsoleSocket = sock
	} else {
		uid, gid := int(spec.Process.User.UID), int(spec.Process.User.GID)
		pio, err = runc.NewPipeIO(uid, gid, func(o *runc.IOOption) { o.OpenStdin = s.opts.Stdin })
		if err != nil {
			return fmt.Errorf("stdio pipes: %w", err)
		}
		copts.IO = pio
	}
	if err := s.runtime(filepath.Base(s.opts.Runtime)+" create", func() error {
		return s.runc.Create(ctx, s.opts.ID, s.opts.Bundle, copts)
	}); err != nil {
		if pio != nil {
			pio.Close()
		}
		s.runc.Delete(ctx, s.opts.ID, &runc.DeleteOpts{Force: true})
		return err
	}
	if s.opts.Tty {
		con, err := sock.ReceiveMaster()
		if err != nil {
			s.runc.Delete(ctx, s.opts.ID, &runc.DeleteOpts{Force: true})
			return fmt.Errorf("receive console: %w", err)
		}
		s.console = con
		s.copyOutput(StreamStdout, con, nil)
		if s.opts.Stdin {
			s.stdin = con
		}
	} else {
		pio.(runc.StartCloser).CloseAfterStart()
		s.copyOutput(StreamStdout, pio.Stdout(), pio.Stdout())
		s.copyOutput(StreamStderr, pio.Stderr(), pio.Stderr())
		if s.opts.Stdin {
			s.stdin = pio.Stdin()
		}
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("read init pid: %w", err)
	}
	if s.pid, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
		return fmt.Errorf("init pid %q: %w", data, err)
	}
	s.cgroups = sysinfo.ProcCgroups(s.pid)
	return nil
}

// runtime runs one call of the OCI runtime; a failure carries the
// runtime's own message, logged during that call, that says why.
func (s *shim) runtime(what string, call func() error) error {
	log := filepath.Join(s.opts.Bundle, runcLog)
	var from int64
	if st, err := os.Stat(log); err == nil {
		from = st.Size()
	}
	if err := call(); err != nil {
		return fmt.Errorf("%s: %s", what, runtimeError(log, from, err))
	}
	return nil
}

func (s *shim) copyOutput(stream string, r io.Reader, c io.Closer) {
	if c != nil {
		s.outputs = append(s.outputs, c)
	}
	s.copying.Add(1)
	go func() {
		defer s.copying.Done()
		if err := s.logw.Copy(stream, io.TeeReader(r, s.tee(stream))); err != nil && !errors.Is(err, unix.EIO) {
			s.log.Debug("output copy ended", "stream", stream, "error", err)
		}
	}()
}

// finish records the init's exit: OOM accounting before the runtime
// deletes the cgroup, remaining processes killed, output drained, then
// the exit record written durably before anyone is told.
func (s *shim) finish(e runc.Exit) {
	exit := &Exit{Pid: s.pid, Code: int32(e.Status), FinishedAt: e.Timestamp}
	if e.Status > 128 {
		exit.Signal = e.Status - 128
	}
	exit.OOMKilled = oomKilled(s.cgroups)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.runc.Delete(ctx, s.opts.ID, &runc.DeleteOpts{Force: true}); err != nil {
		s.log.Warn("runtime delete after exit", "error", err)
	}
	drained := make(chan struct{})
	go func() { s.copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(ioDrainTimeout):
		for _, c := range s.outputs {
			c.Close()
		}
		if s.console != nil {
			s.console.Close()
		}
		// Closing ends pipe reads; a read that a close cannot interrupt
		// must still not keep the exit from being recorded.
		select {
		case <-drained:
		case <-time.After(time.Second):
			s.log.Warn("container output still open after its exit; recording the exit anyway")
		}
	}
	if s.console != nil {
		s.console.Close()
	}
	s.logw.Close()
	if err := writeExit(s.opts.Bundle, exit); err != nil {
		s.log.Error("record exit", "error", err)
	}
	s.mu.Lock()
	s.exit = exit
	close(s.done)
	s.mu.Unlock()
}

func (s *shim) serve(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(conn)
		}()
	}
}

func (s *shim) handle(conn net.Conn) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var req Request
	if err := dec.Decode(&req); err != nil {
		return
	}
	in := afterJSON(dec, conn)
	switch req.Op {
	case OpExec:
		s.exec(conn, in, req.Exec)
		return
	case OpAttach:
		s.attach(conn, in, req.Attach)
		return
	}
	resp := s.do(&req)
	json.NewEncoder(conn).Encode(resp)
}

func (s *shim) exited() *Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

func (s *shim) do(req *Request) *Response {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fail := func(err error) *Response { return &Response{Error: err.Error()} }
	if req.Op == OpWait {
		<-s.done
		return &Response{Pid: s.pid, State: "exited", Exit: s.exited()}
	}
	if e := s.exited(); e != nil {
		if req.Op == OpState {
			return &Response{Pid: s.pid, State: "exited", Exit: e}
		}
		return &Response{Error: "container has exited", Code: CodeNotRunning, Exit: e}
	}
	if s.initExited.Load() && req.Op != OpState && req.Op != OpReopen {
		// Exited; the exit is being recorded.
		return &Response{Error: "container has exited", Code: CodeNotRunning}
	}
	switch req.Op {
	case OpState:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.started {
			return &Response{Pid: s.pid, State: "running", StartedAt: s.startedAt}
		}
		return &Response{Pid: s.pid, State: "created"}
	case OpStart:
		startedAt := time.Now().UTC()
		if err := s.runtime("start", func() error { return s.runc.Start(ctx, s.opts.ID) }); err != nil {
			return fail(err)
		}
		s.mu.Lock()
		s.started, s.startedAt = true, startedAt
		s.mu.Unlock()
		return &Response{Pid: s.pid, State: "running", StartedAt: startedAt}
	case OpKill:
		if err := s.runtime("kill", func() error {
			return s.runc.Kill(ctx, s.opts.ID, req.Signal, &runc.KillOpts{All: req.All})
		}); err != nil {
			if s.initExited.Load() {
				return &Response{Error: "container has exited", Code: CodeNotRunning}
			}
			return fail(err)
		}
		return &Response{Pid: s.pid}
	case OpUpdate:
		if req.Resources == nil {
			return &Response{Error: "update: no resources", Code: CodeInvalid}
		}
		if err := s.runtime("update", func() error { return s.runc.Update(ctx, s.opts.ID, req.Resources) }); err != nil {
			return fail(err)
		}
		return &Response{Pid: s.pid}
	case OpReopen:
		if err := s.logw.Reopen(); err != nil {
			return fail(fmt.Errorf("reopen log: %w", err))
		}
		return &Response{Pid: s.pid}
	}
	return &Response{Error: fmt.Sprintf("unknown op %q", req.Op), Code: CodeInvalid}
}

func readSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, ConfigName))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse %s: %w", ConfigName, err)
	}
	if spec.Process == nil {
		return nil, errors.New("spec has no process")
	}
	return &spec, nil
}
