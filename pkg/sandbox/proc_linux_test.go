package sandbox

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	cases := []struct {
		name, stat string
		start      uint64
		zombie     bool
		bad        bool
	}{
		{"plain", "42 (crid-infra) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10", 123456, false, false},
		{"name with spaces and parens", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", 99, false, false},
		{"zombie", "9 (x) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", 5, true, false},
		{"truncated", "9 (x) S 1 2", 0, false, true},
		{"no parens", "garbage", 0, false, true},
	}
	for _, tc := range cases {
		start, zombie, err := parseStat([]byte(tc.stat))
		if tc.bad {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil || start != tc.start || zombie != tc.zombie {
			t.Errorf("%s: = %d, %v, %v; want %d, %v", tc.name, start, zombie, err, tc.start, tc.zombie)
		}
	}
}

func TestParseInfraCmdline(t *testing.T) {
	line := func(args ...string) []byte { return []byte(strings.Join(args, "\x00") + "\x00") }
	cases := []struct {
		name    string
		cmdline []byte
		id      string
		ok      bool
	}{
		{"ours", line(infraArgs("/run/crid", "abc")...), "abc", true},
		{"ours with more flags", line(append(infraArgs("/run/crid", "abc"), "--hostname", "h")...), "abc", true},
		{"another crid's", line(infraArgs("/tmp/other/state", "abc")...), "", false},
		{"state prefix only", line(infraArgs("/run/crid/x", "abc")...), "", false},
		{"not an infra", line("sleep", "infra", "--state", "/run/crid", "--id", "abc"), "", false},
		{"empty id", line(infraArgs("/run/crid", "")...), "", false},
		{"kernel thread", nil, "", false},
	}
	for _, tc := range cases {
		id, ok := parseInfraCmdline(tc.cmdline, "/run/crid")
		if id != tc.id || ok != tc.ok {
			t.Errorf("%s: = %q, %v; want %q, %v", tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

// TestWatchProcSeesExitAndReaps runs a real child: the pidfd watch must
// notice its exit without a thread blocked in wait, and reap it.
func TestWatchProcSeesExitAndReaps(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); reap(pid) })
	w, err := watchProc(pid, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if w.exited() {
		t.Fatal("exited before being signalled")
	}
	if _, err := watchProc(pid, w.start+1, false); err != errProcGone {
		t.Fatalf("watch with a wrong start time = %v, want errProcGone", err)
	}
	start := time.Now()
	if err := w.stop(5 * time.Second); err != nil { // sleep dies of SIGTERM
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stop took %v", d)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != syscall.ECHILD {
		t.Errorf("child not reaped by the watch: wait4 = %v", err)
	}
	if alive(pid, w.start) {
		t.Error("alive after stop")
	}
	if _, err := watchProc(pid, w.start, false); err != errProcGone {
		t.Errorf("watch of a gone process = %v", err)
	}
}

func TestWatchProcKillsAfterGrace(t *testing.T) {
	// A shell that ignores SIGTERM must get SIGKILL after the grace period.
	cmd := exec.Command("sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); reap(pid) })
	time.Sleep(100 * time.Millisecond) // let the trap be set
	w, err := watchProc(pid, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.stop(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("stopped after %v, before the grace period", d)
	}
}
