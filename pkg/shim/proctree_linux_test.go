package shim

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStatPPid(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
		ok   bool
	}{
		{"123 (sleep) S 45 123 123 0 -1", 45, true},
		{"123 (a ) b (c) S 7 1 1", 7, true},
		{"garbage", 0, false},
	} {
		got, ok := parseStatPPid([]byte(tc.stat))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseStatPPid(%q) = %d, %v", tc.stat, got, ok)
		}
	}
}

func TestKillTreeKillsGrandchildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 300 | cat & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var kids []int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(kids) < 2 {
		kids = descendants(cmd.Process.Pid)
		time.Sleep(10 * time.Millisecond)
	}
	if len(kids) < 2 {
		t.Fatalf("descendants of the shell: %v, want sleep and cat", kids)
	}
	killTree(cmd.Process.Pid)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the shell survived")
	}
	for _, k := range kids {
		for time.Now().Before(deadline) {
			stat, err := exec.Command("cat", "/proc/"+strconv.Itoa(k)+"/stat").Output()
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if stat, err := exec.Command("cat", "/proc/"+strconv.Itoa(k)+"/stat").Output(); err == nil && !strings.Contains(string(stat), ") Z ") {
			t.Errorf("descendant %d survived: %s", k, stat)
		}
	}
}
