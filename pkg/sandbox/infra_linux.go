package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The infra process is crid's own binary run as `crid infra`: it sets the
// pod's hostname and IPC sysctls from inside the pod's namespaces, reports
// "ok" on fd 3, then holds the namespaces, reaping orphans, until killed.
// No image and no OCI runtime are on the pod's critical path. Its command
// line names crid's state dir and the sandbox id, so that recovery finds an
// infra whose sandbox never became ready (scanInfras).

// infraStartTimeout bounds the wait for an infra's "ok".
const infraStartTimeout = 10 * time.Second

// InfraMain is the `crid infra` entry point: infra --state DIR --id ID
// [--hostname NAME] [--sysctl KEY=VALUE]...
func InfraMain(args []string) int {
	status := os.NewFile(3, "status")
	fail := func(err error) int {
		if status != nil {
			fmt.Fprintf(status, "error: %v\n", err)
		}
		return 1
	}
	_ = os.WriteFile("/proc/self/comm", []byte(infraArgv0), 0) // for ps; "exe" otherwise
	var hostname string
	var sysctls [][2]string
	for i := 0; i < len(args); i++ {
		flag, val := args[i], ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		switch flag {
		case "--state", "--id":
			i++ // identify the process in /proc; nothing to do
		case "--hostname":
			hostname = val
			i++
		case "--sysctl":
			k, v, ok := strings.Cut(val, "=")
			if !ok {
				return fail(fmt.Errorf("malformed --sysctl %q", val))
			}
			sysctls = append(sysctls, [2]string{k, v})
			i++
		default:
			return fail(fmt.Errorf("unknown argument %q", flag))
		}
	}
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fail(fmt.Errorf("set hostname %q: %w", hostname, err))
		}
	}
	// IPC sysctls act on the IPC namespace of the writer: this process's.
	for _, kv := range sysctls {
		if err := os.WriteFile(sysctlPath(kv[0]), []byte(kv[1]), 0o644); err != nil {
			return fail(fmt.Errorf("sysctl %s=%s: %w", kv[0], kv[1], err))
		}
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	if status != nil {
		fmt.Fprintln(status, "ok")
		status.Close()
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		// As PID 1 of a pod PID namespace it reaps what containers orphan.
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}

// infraSpec is how to start one infra process.
type infraSpec struct {
	id        string
	netnsPath string // "" = the host's network namespace
	hostname  string // set in the new UTS namespace; "" keeps the copied name
	sysctls   map[string]string
	newUTS    bool // false with host network: the pod keeps the node's name
	newIPC    bool // false with host IPC
	newPID    bool // PID mode POD: containers join the infra's PID namespace
}

// startInfra starts the infra process, detached (own session), in the
// requested fresh namespaces and inside the pod's network namespace, and
// returns a watch on it once it has reported "ok".
func (m *Manager) startInfra(ctx context.Context, s infraSpec) (*watchedProc, error) {
	argv := infraArgs(m.state, s.id)
	if s.hostname != "" && s.newUTS {
		argv = append(argv, "--hostname", s.hostname)
	}
	for k, v := range s.sysctls {
		argv = append(argv, "--sysctl", k+"="+v)
	}
	var flags uintptr
	if s.newUTS {
		flags |= unix.CLONE_NEWUTS
	}
	if s.newIPC {
		flags |= unix.CLONE_NEWIPC
	}
	if s.newPID {
		flags |= unix.CLONE_NEWPID
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("infra status pipe: %w", err)
	}
	defer r.Close()
	cmd := &exec.Cmd{Path: m.infraPath, Args: argv, Dir: "/", Env: []string{"GOMAXPROCS=1"}}
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: flags}

	errc := make(chan error, 1)
	go func() {
		// The child inherits this thread's network namespace. The thread is
		// never unlocked, so Go retires it instead of reusing it elsewhere.
		runtime.LockOSThread()
		if s.netnsPath != "" {
			fd, err := unix.Open(s.netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("open netns %s: %w", s.netnsPath, err)
				return
			}
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
			if err != nil {
				errc <- fmt.Errorf("enter netns %s: %w", s.netnsPath, err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	err = <-errc
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start infra process: %w", err)
	}
	pid := cmd.Process.Pid
	// The watch reaps the child; os.Process must not wait on it too.
	_ = cmd.Process.Release()
	proc, err := watchProc(pid, 0, true)
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil) // our child: reap it, dead or killed
		return nil, fmt.Errorf("infra process %d exited at once", pid)
	}

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	fail := func(err error) (*watchedProc, error) {
		_ = proc.stop(0)
		return nil, err
	}
	select {
	case msg := <-line:
		if msg != "ok" {
			if msg == "" {
				msg = "exited without reporting"
			}
			return fail(fmt.Errorf("infra process: %s", strings.TrimPrefix(msg, "error: ")))
		}
	case <-time.After(infraStartTimeout):
		return fail(fmt.Errorf("infra process did not start within %s", infraStartTimeout))
	case <-ctx.Done():
		return fail(fmt.Errorf("infra process: %w", ctx.Err()))
	}
	return proc, nil
}
