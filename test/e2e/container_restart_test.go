package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

// TestContainersSurviveDaemonRestart restarts crid cleanly, then kills it
// -9 while containers run and while one of them exits: afterwards a
// running container is still running with the same pid and its log still
// grows, one that exited before keeps its status, the one that exited
// during the downtime has its own exit code and a finish time inside the
// downtime, a created one can still start, and Stop and Remove work with
// nothing left behind.
func TestContainersSurviveDaemonRestart(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("restart", nil)
	busybox := e.image("busybox")

	runsCfg := ctrConfig("runs", busybox, sh("i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done")...)
	runs := p.run(runsCfg)
	before := p.run(ctrConfig("before", busybox, sh("exit 7")...))
	beforeSt := e.waitExited(before)
	diesCfg := ctrConfig("dies", busybox, sh("echo ready; while [ ! -e /tmp/die ]; do sleep 0.02; done; echo dying; exit 9")...)
	dies := p.run(diesCfg)
	waitLog(t, p.logPath(diesCfg), "ready\n")
	createdCfg := ctrConfig("created", busybox, sh("echo started late")...)
	created := p.create(createdCfg)
	runsProc, diesProc := e.proc(runs), e.proc(dies)

	checkRunning := func(when string) {
		t.Helper()
		st, info := e.status(runs)
		if st.State != runtime.ContainerState_CONTAINER_RUNNING || info.Pid != runsProc.pid || info.ShimPid != runsProc.shimPid {
			t.Fatalf("%s: running container is %v pid %d shim %d, want running pid %d shim %d",
				when, st.State, info.Pid, info.ShimPid, runsProc.pid, runsProc.shimPid)
		}
		// Its log still grows: the shim, not crid, writes it.
		n := len(lineNumbers(t, p.logPath(runsCfg)))
		waitLog(t, p.logPath(runsCfg), fmt.Sprintf("line%d\n", n+3))
	}
	checkExited := func(when, id string, code int32, finished int64) {
		t.Helper()
		st, _ := e.status(id)
		if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != code || st.Reason != "Error" {
			t.Errorf("%s: container %s is %v exit %d reason %q, want exited %d Error", when, st.Metadata.GetName(), st.State, st.ExitCode, st.Reason, code)
		}
		if finished != 0 && st.FinishedAt != finished {
			t.Errorf("%s: finished_at of %s changed from %d to %d", when, st.Metadata.GetName(), finished, st.FinishedAt)
		}
	}

	e.d.Restart(false)
	checkRunning("after a clean restart")
	checkExited("after a clean restart", before, 7, beforeSt.FinishedAt)

	e.d.Kill()
	down := time.Now()
	// The container exits while crid is down: tell it through its rootfs.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/root/tmp/die", diesProc.pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool { return !framework.Alive(diesProc.pid) }) {
		t.Fatal("container did not exit while crid was down")
	}
	// Let its shim record the exit before crid comes back.
	exitRecord := filepath.Join(e.d.State, "containers", dies, "exit.json")
	if !eventually(5*time.Second, func() bool { _, err := os.Stat(exitRecord); return err == nil }) {
		t.Errorf("no exit record %s while crid is down", exitRecord)
	}
	up := time.Now()
	e.d.Launch()

	checkRunning("after kill -9")
	checkExited("after kill -9", before, 7, beforeSt.FinishedAt)
	checkExited("after kill -9", dies, 9, 0)
	st, _ := e.status(dies)
	if f := time.Unix(0, st.FinishedAt); f.Before(down) || f.After(up) {
		t.Errorf("finished_at of the container that exited during the downtime is %v, want within [%v, %v]", f, down, up)
	}
	if st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Errorf("started_at %d finished_at %d", st.StartedAt, st.FinishedAt)
	}
	if out := logText(readCRILog(t, p.logPath(diesCfg)), ""); !strings.Contains(out, "dying\n") {
		t.Errorf("log of the container that exited during the downtime lacks its last line:\n%s", out)
	}
	if st, _ := e.status(created); st.State != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container is %v after the restart", st.State)
	}
	list, err := e.d.Runtime.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
	if err != nil || len(list.Containers) != 4 {
		t.Fatalf("ListContainers after restart: %v, %v", list, err)
	}
	states := map[string]runtime.ContainerState{}
	for _, c := range list.Containers {
		states[c.Metadata.GetName()] = c.State
	}
	wantStates := map[string]runtime.ContainerState{
		"runs": runtime.ContainerState_CONTAINER_RUNNING, "before": runtime.ContainerState_CONTAINER_EXITED,
		"dies": runtime.ContainerState_CONTAINER_EXITED, "created": runtime.ContainerState_CONTAINER_CREATED,
	}
	for name, want := range wantStates {
		if states[name] != want {
			t.Errorf("listed %s as %v, want %v", name, states[name], want)
		}
	}

	// The restarted crid still drives them.
	e.start(created)
	if st := e.waitExited(created); st.ExitCode != 0 {
		t.Errorf("container created before the crash, started after: exit %d", st.ExitCode)
	}
	if out := logText(readCRILog(t, p.logPath(createdCfg)), ""); out != "started late\n" {
		t.Errorf("its log: %q", out)
	}
	if err := os.Rename(p.logPath(runsCfg), p.logPath(runsCfg)+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.ReopenContainerLog(ctxT(t), &runtime.ReopenContainerLogRequest{ContainerId: runs}); err != nil {
		t.Errorf("ReopenContainerLog of an adopted container: %v", err)
	} else {
		waitLog(t, p.logPath(runsCfg), "line")
	}
	update := &runtime.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuPeriod: 100000, CpuQuota: 30000}
	if _, err := e.d.Runtime.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: runs, Linux: update}); err != nil {
		t.Errorf("UpdateContainerResources of an adopted container: %v", err)
	} else if mem, quota, _ := cgroupLimits(t, runsProc.pid); mem != 96<<20 || quota != 30000 {
		t.Errorf("adopted container after update: memory %d quota %d", mem, quota)
	}
	e.stop(runs, 0)
	if st, _ := e.status(runs); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
		t.Errorf("adopted container after StopContainer: %v exit %d", st.State, st.ExitCode)
	}
	if framework.Alive(runsProc.pid) {
		t.Errorf("adopted container's process %d survived StopContainer", runsProc.pid)
	}
	p.removeAll()
	e.assertNoContainerLeftovers(runsProc, diesProc)
	assertNoPodLeftovers(t, e.d, e.n)
}

// TestAdoptedContainerExitIsSeen: a container that exits after crid was
// killed and restarted (so crid watches a shim it did not start) is
// reported Exited with its code.
func TestAdoptedContainerExitIsSeen(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("adopt", nil)
	cfg := ctrConfig("later", e.image("busybox"), sh("echo ready; while [ ! -e /tmp/go ]; do sleep 0.02; done; exit 5")...)
	id := p.run(cfg)
	waitLog(t, p.logPath(cfg), "ready\n")
	proc := e.proc(id)
	e.d.Restart(true)
	if st, info := e.status(id); st.State != runtime.ContainerState_CONTAINER_RUNNING || info.Pid != proc.pid {
		t.Fatalf("after kill -9: %v pid %d, want running pid %d", st.State, info.Pid, proc.pid)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/root/tmp/go", proc.pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := e.waitExited(id)
	if st.ExitCode != 5 || st.FinishedAt < st.StartedAt {
		t.Errorf("adopted container exited %d (started %d finished %d), want 5", st.ExitCode, st.StartedAt, st.FinishedAt)
	}
	p.removeAll()
	e.assertNoContainerLeftovers(proc)
}

// TestKillDuringCreateContainerLeavesNoLeak kills crid -9 while the OCI
// runtime's create of a container is in flight (a runtime handler whose
// create takes two seconds); the shim outlives crid. After the restart
// nothing of that container may remain, once the runtime call has ended
// too: record, shim, runtime state, processes, cgroups, mounts, dirs.
func TestKillDuringCreateContainerLeavesNoLeak(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	marker := filepath.Join(bin, "creating")
	wrapper := filepath.Join(bin, "slow-runc")
	script := "#!/bin/sh\nfor a; do if [ \"$a\" = create ]; then touch " + marker + "; sleep 2; fi; done\nexec " + runc + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newCtrEnvConfig(t, fmt.Sprintf("[runtimes.runc]\npath = \"runc\"\n[runtimes.slow]\npath = %q\n", wrapper))
	p := e.podWithHandler("slowpod", "slow", nil)
	cfg := ctrConfig("victim", e.image("busybox"), "/bin/sleep", "3600")
	go e.d.Runtime.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
	if !eventually(20*time.Second, func() bool { _, err := os.Stat(marker); return err == nil }) {
		t.Fatalf("CreateContainer never reached the runtime's create\n%s", e.d.LogTail(20))
	}
	ids := entries(t, filepath.Join(e.d.State, "containers"))
	if len(ids) != 1 {
		t.Fatalf("bundles while create is in flight: %v", ids)
	}
	id := ids[0]
	shims := framework.ShimProcesses(id)
	e.d.Kill()
	e.d.Launch()
	// Wait out the runtime call the shim had started.
	time.Sleep(2500 * time.Millisecond)
	procs := []ctrProc{{id: id}}
	if len(shims) == 1 {
		procs[0].shimPid = shims[0]
	}
	e.assertNoContainerLeftovers(procs...)
	if pids := processesInCgroupsNaming(id); len(pids) > 0 {
		t.Errorf("processes of the half-created container left: %v", pids)
	}
	// The pod still takes the same container.
	if _, err := p.tryCreate(cfg); err != nil {
		t.Fatalf("CreateContainer after recovery: %v", err)
	}
}

// processesInCgroupsNaming lists live processes whose cgroup path holds id.
func processesInCgroupsNaming(id string) []string {
	paths, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	var pids []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		pid := filepath.Base(filepath.Dir(p))
		if n, _ := strconv.Atoi(pid); err == nil && strings.Contains(string(data), id) && framework.Alive(n) {
			pids = append(pids, pid)
		}
	}
	return pids
}
