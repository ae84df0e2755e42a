//go:build crictl

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCrictlContainerLifecycle drives containers with crictl as an
// operator would: pull, create, start, ps, inspect, logs, update, stats,
// stop, rm.
func TestCrictlContainerLifecycle(t *testing.T) {
	e := newCtrEnv(t)
	crictl := crictlRunner(t, e.d.Socket)
	image := e.reg.Host + "/crid-test/busybox:latest"
	crictl("pull", image)

	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pod := write("pod.json", `{"metadata":{"name":"cli-ctr","namespace":"e2e","uid":"uid-cli-ctr"},
 "log_directory":"`+logDir+`","linux":{"security_context":{"namespace_options":{"pid":1}}}}`)
	ctr := write("ctr.json", `{"metadata":{"name":"web"},"image":{"image":"`+image+`"},
 "command":["sh","-c","echo started; trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done"],
 "log_path":"web.log","labels":{"app":"cli"},"linux":{}}`)

	podID := crictl("runp", pod)
	t.Cleanup(func() {
		exec.Command(crictlBin(t), "--runtime-endpoint", "unix://"+e.d.Socket, "rmp", "-f", podID).Run()
	})
	id := crictl("create", podID, ctr, pod)
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a container id", id)
	}
	if got := crictl("ps", "-a", "-q", "--no-trunc", "--state", "created"); got != id {
		t.Errorf("ps --state created = %q", got)
	}
	crictl("start", id)
	if got := crictl("ps", "-q", "--no-trunc", "--label", "app=cli", "--pod", podID); got != id {
		t.Errorf("ps --label app=cli --pod = %q, want %s", got, id)
	}
	if !waitFor(10*time.Second, func() bool { return strings.Contains(crictl("logs", id), "started") }) {
		t.Fatalf("crictl logs never showed the output: %q", crictl("logs", id))
	}

	var inspect struct {
		Status struct {
			State   string `json:"state"`
			LogPath string `json:"logPath"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(crictl("inspect", id)), &inspect); err != nil {
		t.Fatal(err)
	}
	if inspect.Status.State != "CONTAINER_RUNNING" || inspect.Status.LogPath != filepath.Join(logDir, "web.log") || inspect.Info.Pid <= 0 {
		t.Fatalf("inspect = %+v", inspect)
	}

	crictl("update", "--memory", "67108864", id)
	if got := readCgroupFile(t, inspect.Info.Pid, "memory", "memory.limit_in_bytes", "memory.max"); got != "67108864" {
		t.Errorf("after crictl update --memory, the container's memory limit is %q", got)
	}
	if out := crictl("stats", "-o", "json", "--id", id); !strings.Contains(out, id) || !strings.Contains(out, "workingSetBytes") {
		t.Errorf("crictl stats: %s", out)
	}

	crictl("stop", "--timeout", "10", id)
	var exited struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(crictl("inspect", id)), &exited); err != nil {
		t.Fatal(err)
	}
	if exited.Status.State != "CONTAINER_EXITED" || exited.Status.ExitCode != 3 {
		t.Errorf("after crictl stop: %+v (want exited 3: the TERM trap)", exited.Status)
	}
	if !strings.Contains(crictl("logs", id), "bye") {
		t.Errorf("the trap's output is not in the log: %q", crictl("logs", id))
	}
	crictl("rm", id)
	if got := crictl("ps", "-a", "-q"); got != "" {
		t.Errorf("ps -a after rm = %q", got)
	}
}

// readCgroupFile reads a cgroup file of pid's cgroup for a v1 controller
// (name v1) or the unified hierarchy (name v2).
func readCgroupFile(t *testing.T, pid int, controller, v1, v2 string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var p string
		switch {
		case strings.Contains(","+f[1]+",", ","+controller+","):
			p = filepath.Join("/sys/fs/cgroup", controller, f[2], v1)
		case f[0] == "0" && f[1] == "" && fileExists("/sys/fs/cgroup/cgroup.controllers"):
			p = filepath.Join("/sys/fs/cgroup", f[2], v2)
		default:
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	t.Fatalf("no %s cgroup for pid %d", controller, pid)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
