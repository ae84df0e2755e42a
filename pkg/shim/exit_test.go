package shim

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	runc "github.com/containerd/go-runc"
)

func TestExitRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExit(dir); !os.IsNotExist(err) {
		t.Fatalf("no record yet: %v", err)
	}
	at := time.Date(2026, 11, 23, 1, 2, 3, 4, time.UTC)
	if err := writeExit(dir, &Exit{Pid: 9, Code: 137, Signal: 9, OOMKilled: true, FinishedAt: at}); err != nil {
		t.Fatal(err)
	}
	e, err := ReadExit(dir)
	if err != nil || e.Pid != 9 || e.Code != 137 || !e.OOMKilled || !e.FinishedAt.Equal(at) {
		t.Fatalf("read back %+v, %v", e, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ExitName+".tmp")); !os.IsNotExist(err) {
		t.Errorf("temp file left behind: %v", err)
	}
}

func TestOOMKilledCounters(t *testing.T) {
	v1, v2 := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(v1, "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"), 0o644)
	os.WriteFile(filepath.Join(v2, "memory.events"), []byte("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"), 0o644)
	if oomKilled(map[string]string{"memory": v1}) {
		t.Error("v1 cgroup without OOM kills reported as OOM-killed")
	}
	if !oomKilled(map[string]string{"": v2}) {
		t.Error("v2 cgroup with an OOM kill not reported")
	}
	if oomKilled(map[string]string{"memory": filepath.Join(v1, "missing")}) {
		t.Error("a missing cgroup reported as OOM-killed")
	}
}

func TestReaperDropsStaleUnclaimedExits(t *testing.T) {
	r := &reaper{subs: map[int]chan runc.Exit{}, unclaimed: map[int]runc.Exit{}}
	old := time.Now().Add(-time.Minute)
	r.dispatch(runc.Exit{Pid: 42, Status: 3, Timestamp: old})
	ch := r.subscribe(42, time.Now().Add(-time.Second))
	select {
	case e := <-ch:
		t.Fatalf("an exit from before the process started was handed out: %+v", e)
	default:
	}
	r.dispatch(runc.Exit{Pid: 42, Status: 7, Timestamp: time.Now()})
	if e := <-ch; e.Status != 7 {
		t.Fatalf("exit status %d, want 7", e.Status)
	}
	r.dispatch(runc.Exit{Pid: 43, Status: 1, Timestamp: time.Now()})
	if e := <-r.subscribe(43, time.Now().Add(-time.Second)); e.Status != 1 {
		t.Fatalf("a fresh unclaimed exit was lost: %+v", e)
	}
}
