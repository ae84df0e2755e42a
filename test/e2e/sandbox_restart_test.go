package e2e

import (
	"os"
	"path/filepath"
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
			d.Kill()
			syscall.Kill(diesInfo.Pid, syscall.SIGKILL) // its infra dies while crid is down
			d.Launch()
		} else {
			d.Restart(false)
		}
		st, info := podStatus(t, d, keep)
		if st.State != runtime.PodSandboxState_SANDBOX_READY || st.Network.Ip != before.Network.Ip || info.Pid != keepInfo.Pid {
			t.Fatalf("after restart (crash=%v): %v pid %d", crash, st, info.Pid)
		}
	}
	if st, _ := podStatus(t, d, dies); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod whose infra died is %v", st.State)
	}
	// The surviving pod's network still works, and the restarted crid
	// watches its infra like one it started itself.
	serveInPod(t, keepInfo.NetnsPath, 8081, "still here")
	if got := dialRead(t, before.Network.Ip+":8081"); got != "still here" {
		t.Fatalf("pod after restarts: %q", got)
	}
	syscall.Kill(keepInfo.Pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for st, _ := podStatus(t, d, keep); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY; st, _ = podStatus(t, d, keep) {
		if time.Now().After(deadline) {
			t.Fatal("adopted infra died, pod still ready after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range []string{keep, dies} {
		if _, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	assertNoPodLeftovers(t, d, n, keepInfo.Pid, diesInfo.Pid)
}

// TestKillDuringRunPodSandboxLeavesNoLeak kills crid -9 while the CNI ADD
// of a pod is in flight: the bridge plugin has allocated the pod's IP and
// wired its veth, but has not answered (so libcni cached nothing). After a
// restart nothing of the pod may remain: record, pin, dir, mounts, infra
// process, IP allocation.
func TestKillDuringRunPodSandboxLeavesNoLeak(t *testing.T) {
	bin := t.TempDir()
	added := filepath.Join(bin, "added")
	// A bridge plugin that does the real ADD, then hangs before answering.
	script := `#!/bin/sh
out=$(/usr/lib/cni/bridge "$@"); rc=$?
if [ "$CNI_COMMAND" = ADD ]; then touch ` + added + `; sleep 3; fi
printf '%s' "$out"
exit $rc
`
	if err := os.WriteFile(filepath.Join(bin, "slowbridge"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n := framework.NewNetwork(t, "slowbridge")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir, CNIBinDirs: []string{bin}})
	go d.Runtime.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("crash")})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(added); err == nil && len(infraProcesses(d.State)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RunPodSandbox never got to CNI ADD with its infra running\n%s", d.LogTail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(n.Allocations()) != 1 {
		t.Fatalf("allocations while ADD is in flight: %v", n.Allocations())
	}
	d.Kill()
	d.Launch()
	assertNoPodLeftovers(t, d, n)

	// And the node is still usable: the same pod runs now.
	id := runPod(t, d, podConfig("crash"))
	if st, _ := podStatus(t, d, id); st.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after recovery: %v", st.State)
	}
}

// TestInfraDeathMarksPodNotReady: kubelet recreates a sandbox only once it
// reports not ready, so the death of its infra process must show at once.
func TestInfraDeathMarksPodNotReady(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	id := runPod(t, d, podConfig("victim"))
	_, info := podStatus(t, d, id)
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := podStatus(t, d, id)
		if st.State == runtime.PodSandboxState_SANDBOX_NOTREADY {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod still %v 5s after its infra was killed", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, call := range []func() error{
		func() error {
			_, err := d.Runtime.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: id})
			return err
		},
		func() error {
			_, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	assertNoPodLeftovers(t, d, n, info.Pid)
}
