package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The infra process is crid's own binary run as `crid infra`: it sets the
// pod's hostname and sysctls from inside the pod's namespaces, reports
// "ok" on fd 3, then holds the namespaces, reaping orphans, until killed.
// No image and no OCI runtime are on the pod's critical path.

// InfraMain is the `crid infra` entry point.
func InfraMain(args []string) int {
	status := os.NewFile(3, "status")
	fail := func(err error) int {
		if status != nil {
			fmt.Fprintf(status, "error: %v\n", err)
		}
		return 1
	}
	var hostname string
	sysctls := map[string]string{}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--hostname":
			i++
			if i < len(args) {
				hostname = args[i]
			}
		case "--sysctl":
			i++
			if i < len(args) {
				k, v, _ := strings.Cut(args[i], "=")
				sysctls[k] = v
			}
		}
	}
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fail(fmt.Errorf("set hostname %q: %w", hostname, err))
		}
	}
	for k, v := range sysctls {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fail(fmt.Errorf("sysctl %s=%s: %w", k, v, err))
		}
	}
	fmt.Fprintln(status, "ok")
	status.Close()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		// As PID 1 of a pod PID namespace we reap what containers orphan.
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}

// infraProc identifies a running infra process; the start time tells it
// apart from a later process that reused its pid.
type infraProc struct {
	pid   int
	start uint64
}

// startInfra runs the infra process in fresh IPC and UTS namespaces (and a
// PID namespace when newPID), inside the network namespace at netnsPath
// ("" = the host's).
func (m *Manager) startInfra(netnsPath, hostname string, sysctls map[string]string, newPID bool, logPath string) (infraProc, error) {
	args := []string{"infra"}
	if hostname != "" {
		args = append(args, "--hostname", hostname)
	}
	for k, v := range sysctls {
		args = append(args, "--sysctl", k+"="+v)
	}
	flags := uintptr(unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if newPID {
		flags |= unix.CLONE_NEWPID
	}
	r, w, err := os.Pipe()
	if err != nil {
		return infraProc{}, err
	}
	defer r.Close()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		return infraProc{}, fmt.Errorf("infra log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(m.infraPath, args...)
	cmd.Args[0] = "crid-infra"
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: flags, Pdeathsig: 0}

	errc := make(chan error, 1)
	go func() {
		// The child inherits this thread's network namespace. The thread is
		// never unlocked, so Go retires it instead of reusing it elsewhere.
		runtime.LockOSThread()
		if netnsPath != "" {
			fd, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("open netns %s: %w", netnsPath, err)
				return
			}
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
			if err != nil {
				errc <- fmt.Errorf("enter netns %s: %w", netnsPath, err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	err = <-errc
	w.Close()
	if err != nil {
		return infraProc{}, fmt.Errorf("start infra process: %w", err)
	}
	// Reap it if it exits while this crid runs.
	go cmd.Wait()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s != "ok" {
			killProc(infraProc{pid: cmd.Process.Pid}, time.Second)
			if s == "" {
				s = "exited without reporting"
			}
			return infraProc{}, fmt.Errorf("infra process: %s", strings.TrimPrefix(s, "error: "))
		}
	case <-time.After(10 * time.Second):
		killProc(infraProc{pid: cmd.Process.Pid}, time.Second)
		return infraProc{}, fmt.Errorf("infra process did not start within 10s")
	}
	start, err := procStartTime(cmd.Process.Pid)
	if err != nil {
		killProc(infraProc{pid: cmd.Process.Pid}, time.Second)
		return infraProc{}, err
	}
	return infraProc{pid: cmd.Process.Pid, start: start}, nil
}

// procStartTime reads field 22 of /proc/<pid>/stat.
func procStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields start after the last ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	if fields[0] == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// alive reports whether p is still the same running process.
func (p infraProc) alive() bool {
	if p.pid <= 0 {
		return false
	}
	start, err := procStartTime(p.pid)
	return err == nil && (p.start == 0 || start == p.start)
}

// killProc SIGKILLs p (if it is still that process) and waits until it is gone.
func killProc(p infraProc, timeout time.Duration) error {
	if !p.alive() {
		return nil
	}
	if err := unix.Kill(p.pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill infra process %d: %w", p.pid, err)
	}
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("infra process %d still alive after SIGKILL", p.pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// pinNamespaces bind-mounts the infra's ipc and uts namespaces under
// dir/ns so containers can join them by path.
func pinNamespaces(dir string, pid int) error {
	nsDir := filepath.Join(dir, "ns")
	if err := os.MkdirAll(nsDir, 0o700); err != nil {
		return err
	}
	for _, ns := range []string{"ipc", "uts"} {
		pin := filepath.Join(nsDir, ns)
		if err := os.WriteFile(pin, nil, 0o600); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), pin, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace: %w", ns, err)
		}
	}
	return nil
}

// mountShm mounts the pod's /dev/shm tmpfs at path.
func mountShm(path string, size int64) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount pod shm at %s: %w", path, err)
	}
	return nil
}

// unmountAll detaches every mount at or below dir, deepest first.
func unmountAll(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}
