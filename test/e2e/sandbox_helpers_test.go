package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: "uid-" + name},
		Hostname: name,
		Labels:   map[string]string{"app": name, "suite": "e2e"},
	}
}

func runPod(t *testing.T, d *framework.Daemon, cfg *runtime.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.Metadata.Name, err)
	}
	t.Cleanup(func() {
		d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
	})
	return resp.PodSandboxId
}

type podInfo struct {
	Pid       int    `json:"pid"`
	NetnsPath string `json:"netnsPath"`
}

func podStatus(t *testing.T, d *framework.Daemon, id string) (*runtime.PodSandboxStatus, podInfo) {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	var info podInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info: %v", err)
	}
	return resp.Status, info
}

// assertNoPodLeftovers checks that nothing of any pod remains: records,
// netns pins, sandbox dirs, mounts, IP allocations, infra processes.
func assertNoPodLeftovers(t *testing.T, d *framework.Daemon, n *framework.Network, pids ...int) {
	t.Helper()
	list, err := d.Runtime.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) > 0 {
		t.Errorf("sandboxes left: %d", len(list.Items))
	}
	for _, dir := range []string{"netns", "sandboxes"} {
		if left := entries(t, filepath.Join(d.State, dir)); len(left) > 0 {
			t.Errorf("%s left: %v", dir, left)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, d.State) {
			t.Errorf("mount left: %s", line)
		}
	}
	if n != nil {
		if ips := n.Allocations(); len(ips) > 0 {
			t.Errorf("IP allocations left: %v", ips)
		}
	}
	if procs := infraProcesses(d.State); len(procs) > 0 {
		t.Errorf("infra processes of this crid left: %v", procs)
	}
	for _, pid := range pids {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(data), ") Z ") {
			t.Errorf("infra process %d still running", pid)
		}
	}
}

// infraProcesses lists the pids of live infra processes whose command line
// names state, the daemon's state dir (crid-infra infra --state DIR --id ID).
func infraProcesses(state string) []string {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) < 4 || args[0] != "crid-infra" || args[3] != state {
			continue
		}
		pid := filepath.Base(filepath.Dir(p))
		if stat, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !strings.Contains(string(stat), ") Z ") {
			pids = append(pids, pid)
		}
	}
	return pids
}
