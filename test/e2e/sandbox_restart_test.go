package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func TestPodsSurviveDaemonRestart(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	keep := runPod(t, d, podConfig("keep"))
	dies := runPod(t, d, podConfig("dies"))
	before, keepInfo := podStatus(t, d, keep)
	_, diesInfo := podStatus(t, d, dies)
	for _, crash := range []bool{false, true} {
		if crash {
			syscall.Kill(diesInfo.Pid, syscall.SIGKILL) // its infra dies while crid is down
		}
		d.Restart(crash)
		st, info := podStatus(t, d, keep)
		if st.State != runtime.PodSandboxState_SANDBOX_READY || st.Network.Ip != before.Network.Ip || info.Pid != keepInfo.Pid {
			t.Fatalf("after restart (crash=%v): %v pid %d", crash, st, info.Pid)
		}
	}
	if st, _ := podStatus(t, d, dies); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod whose infra died is %v", st.State)
	}
	for _, id := range []string{keep, dies} {
		if _, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	assertNoPodLeftovers(t, d, n, keepInfo.Pid, diesInfo.Pid)
}

// TestKillDuringRunPodSandboxLeavesNoLeak kills crid -9 while the CNI ADD
// of a pod is in flight, restarts it and checks nothing of the pod remains.
func TestKillDuringRunPodSandboxLeavesNoLeak(t *testing.T) {
	bin := t.TempDir()
	// A bridge plugin that waits, and gives up if crid died meanwhile.
	script := `#!/bin/sh
parent=$PPID
[ "$CNI_COMMAND" = ADD ] && sleep 2
if [ "$CNI_COMMAND" = ADD ] && [ "$(cut -d' ' -f4 /proc/$$/stat)" != "$parent" ]; then exit 1; fi
exec /usr/lib/cni/bridge "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "slowbridge"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n := framework.NewNetwork(t, "slowbridge")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir, CNIBinDirs: []string{bin}})
	before := infraPids()
	go d.Runtime.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("crash")})
	deadline := time.Now().Add(20 * time.Second)
	for len(entries(t, filepath.Join(d.State, "sandboxes"))) == 0 || len(entries(t, filepath.Join(d.State, "netns"))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("RunPodSandbox never got under way")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // infra started, CNI ADD sleeping
	d.Kill()
	time.Sleep(2500 * time.Millisecond) // the orphaned plugin gives up
	d.Launch()
	assertNoPodLeftovers(t, d, n)
	// No infra process of the interrupted pod survives: none that appeared
	// since this daemon started is still running.
	for pid := range infraPids() {
		if !before[pid] {
			t.Errorf("infra process %d left behind", pid)
		}
	}
}

// infraPids returns the running (not zombie) crid infra processes.
func infraPids() map[int]bool {
	out := map[int]bool{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		if strings.HasPrefix(string(data), "crid-infra\x00") {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
			out[pid] = true
		}
	}
	return out
}
