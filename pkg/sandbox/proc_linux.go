package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// errProcGone means the process has exited, or its pid now belongs to
// another process.
var errProcGone = errors.New("process is gone")

// watchedProc is a handle on one infra process: a pidfd, which names that
// process and no later one reusing its pid, parked in Go's netpoller so a
// watch costs no thread. done is closed once the process has exited (and,
// for crid's own child, been reaped).
type watchedProc struct {
	pid   int
	start uint64
	fd    *os.File
	done  chan struct{}
}

// watchProc opens a handle on pid if it is still the process that started
// at start (start 0 accepts any). child marks crid's own child, which the
// watch reaps: only then is waiting on the pid safe from reuse.
func watchProc(pid int, start uint64, child bool) (*watchedProc, error) {
	if pid <= 0 {
		return nil, errProcGone
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, errProcGone
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Checked after opening: from here on fd cannot name another process.
	st, zombie, err := procStat(pid)
	if err != nil || zombie || (start != 0 && st != start) {
		unix.Close(fd)
		if child && zombie {
			reap(pid)
		}
		return nil, errProcGone
	}
	w := &watchedProc{pid: pid, start: st, fd: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), done: make(chan struct{})}
	go w.wait(child)
	return w, nil
}

func (w *watchedProc) wait(child bool) {
	defer close(w.done)
	rc, err := w.fd.SyscallConn()
	if err == nil {
		// A pidfd polls readable once the process has exited.
		err = rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(p, 0)
			return n > 0
		})
	}
	if err != nil {
		// Not pollable here: fall back to looking every 100ms.
		for alive(w.pid, w.start) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if child {
		reap(w.pid)
	}
	w.fd.Close()
}

func reap(pid int) {
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
}

// exited reports whether the process is gone.
func (w *watchedProc) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// signal sends sig through the pidfd; a process already gone is not an error.
func (w *watchedProc) signal(sig unix.Signal) error {
	if w.exited() {
		return nil
	}
	rc, err := w.fd.SyscallConn()
	if err != nil {
		return nil // closed: the process is gone
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return nil
	}
	if serr != nil && !errors.Is(serr, unix.ESRCH) {
		return fmt.Errorf("signal %v to process %d: %w", sig, w.pid, serr)
	}
	return nil
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (w *watchedProc) stop(grace time.Duration) error {
	if err := w.signal(unix.SIGTERM); err != nil {
		return err
	}
	select {
	case <-w.done:
		return nil
	case <-time.After(grace):
	}
	if err := w.signal(unix.SIGKILL); err != nil {
		return err
	}
	select {
	case <-w.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("process %d still alive 10s after SIGKILL", w.pid)
	}
}

// procStat reads the start time (field 22 of /proc/<pid>/stat) and whether
// the process is a zombie.
func procStat(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	return parseStat(data)
}

// parseStat parses /proc/<pid>/stat; the command name in parentheses may
// hold spaces and parentheses, so fields are counted after the last ')'.
func parseStat(data []byte) (start uint64, zombie bool, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("malformed stat %q", data)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("malformed stat %q", data)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", err
}

// alive reports whether pid is still the running process started at start.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, zombie, err := procStat(pid)
	return err == nil && !zombie && (start == 0 || st == start)
}

// foundInfra is an infra process found in /proc.
type foundInfra struct {
	id    string
	pid   int
	start uint64
}

// scanInfras finds the live infra processes of the crid whose state dir is
// state, by their command line; after a crash this is the only record of
// an infra started for a sandbox that never became ready.
func scanInfras(state string) []foundInfra {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []foundInfra
	for _, d := range dirs {
		data, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		id, ok := parseInfraCmdline(data, state)
		if !ok {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		st, zombie, err := procStat(pid)
		if err != nil || zombie {
			continue
		}
		out = append(out, foundInfra{id: id, pid: pid, start: st})
	}
	return out
}

// infraArgv0 is the argv[0] of every infra process.
const infraArgv0 = "crid-infra"

// infraArgs is the command line of an infra process: argv[0] and the
// subcommand, then the state dir and sandbox id that identify it.
func infraArgs(state, id string) []string {
	return []string{infraArgv0, "infra", "--state", state, "--id", id}
}

// parseInfraCmdline returns the sandbox id of an infra command line (NUL
// separated, as in /proc/<pid>/cmdline) that belongs to state.
func parseInfraCmdline(cmdline []byte, state string) (string, bool) {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 6 || args[0] != infraArgv0 || args[1] != "infra" || args[2] != "--state" || args[3] != state || args[4] != "--id" || args[5] == "" {
		return "", false
	}
	return args[5], true
}
