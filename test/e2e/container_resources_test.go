package e2e

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

// TestContainerOOMKilled: a container that allocates past its memory limit
// is killed by the kernel and reported Exited with reason OOMKilled.
func TestContainerOOMKilled(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("oom", nil)
	busybox := e.image("busybox")
	// dd fills a 256 MiB buffer from /dev/zero: far over the 32 MiB limit.
	cfg := ctrConfig("hog", busybox, "/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	cfg.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}}
	st, out := p.runToExit(cfg)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Fatalf("exit %d reason %q message %q, want 137 OOMKilled; log:\n%s", st.ExitCode, st.Reason, st.Message, out)
	}

	// Within its limit the same command completes.
	ok := ctrConfig("fits", busybox, "/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1")
	ok.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}}
	if st, out := p.runToExit(ok); st.ExitCode != 0 || st.Reason != "Completed" {
		t.Fatalf("dd within the limit: exit %d reason %q; log:\n%s", st.ExitCode, st.Reason, out)
	}
}

// cgroupLimits reads the memory limit and CPU quota of a process's cgroups
// from the host.
func cgroupLimits(t *testing.T, pid int) (mem, quota, period int64) {
	t.Helper()
	dirs, err := framework.CgroupDirs(pid)
	if err != nil {
		t.Fatal(err)
	}
	read := func(ctl, file string) int64 {
		v, err := framework.ReadCgroupInt(dirs[ctl], file)
		if err != nil {
			t.Fatalf("cgroup of pid %d: %v", pid, err)
		}
		return v
	}
	return read("memory", "memory.limit_in_bytes"), read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")
}

// TestUpdateContainerResourcesLive: the limits a container starts with are
// in its cgroup, UpdateContainerResources changes them while it runs, and
// ContainerStatus reports the new ones.
func TestUpdateContainerResourcesLive(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("update", nil)
	cfg := ctrConfig("limited", e.image("busybox"), "/bin/sleep", "3600")
	cfg.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
		MemoryLimitInBytes: 64 << 20, CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 512,
	}}
	id := p.run(cfg)
	proc := e.proc(id)
	if mem, quota, period := cgroupLimits(t, proc.pid); mem != 64<<20 || quota != 20000 || period != 100000 {
		t.Fatalf("at start: memory %d quota %d period %d, want %d 20000 100000", mem, quota, period, 64<<20)
	}

	update := &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 1024}
	if _, err := e.d.Runtime.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: update}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if mem, quota, _ := cgroupLimits(t, proc.pid); mem != 128<<20 || quota != 50000 {
		t.Fatalf("after update: memory %d quota %d, want %d 50000", mem, quota, 128<<20)
	}
	if shares, err := framework.ReadCgroupInt(proc.cgroups["cpu"], "cpu.shares"); err != nil || shares != 1024 {
		t.Errorf("after update: cpu.shares %d (%v), want 1024", shares, err)
	}
	st, _ := e.status(id)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container is %v after the update", st.State)
	}
	if r := st.GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 128<<20 || r.GetCpuQuota() != 50000 {
		t.Errorf("ContainerStatus.resources = %v, want the updated limits", st.GetResources())
	}

	// Unknown containers are NotFound; a CPU quota the kernel refuses (under
	// 1 ms) is an error, and the container keeps running.
	_, err := e.d.Runtime.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: strings.Repeat("f", 64), Linux: update})
	if status.Code(err) != codes.NotFound {
		t.Errorf("update of an unknown container: %v, want NotFound", err)
	}
	bad := &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuPeriod: 100000, CpuQuota: 500}
	if _, err := e.d.Runtime.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: bad}); err == nil {
		t.Errorf("UpdateContainerResources with cpu_quota 500 (the kernel refuses < 1000) succeeded")
	}
	if _, quota, _ := cgroupLimits(t, proc.pid); quota != 50000 {
		t.Errorf("after a refused update the CPU quota is %d, want 50000", quota)
	}
	if st, _ := e.status(id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container is %v after a refused update", st.State)
	}
	p.removeAll()
	e.assertNoContainerLeftovers(proc)
}

// TestSharedPIDNamespacePod: in a pod with namespace_options.pid = POD one
// container sees the other's processes; in a pod without, it does not.
func TestSharedPIDNamespacePod(t *testing.T) {
	e := newCtrEnv(t)
	busybox := e.image("busybox")
	shared := e.pod("sharedpid", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	})
	private := e.pod("privatepid", nil)
	script := "ps -o pid,args; echo self=$$"
	var procs []ctrProc
	for _, p := range []*ctrPod{shared, private} {
		id := p.run(ctrConfig("sleeper", busybox, "/bin/sleep", "3217"))
		procs = append(procs, e.proc(id))
		out := p.output(ctrConfig("looker", busybox, sh(script)...))
		sees := strings.Contains(out, "sleep 3217")
		if want := p == shared; sees != want {
			t.Errorf("pod %s: the second container sees the first's sleep: %v, want %v; ps:\n%s", p.cfg.Metadata.Name, sees, want, out)
		}
		// Without sharing, each container is PID 1 of its own namespace;
		// with it, PID 1 is the pod's infra.
		if self := strings.Contains(out, "self=1\n"); self == (p == shared) {
			t.Errorf("pod %s: the container's shell is PID 1: %v; ps:\n%s", p.cfg.Metadata.Name, self, out)
		}
	}
	_, info := e.status(procs[0].id)
	if nsLink(t, info.Pid, "pid") == nsLink(t, "self", "pid") {
		t.Errorf("shared-PID container runs in the host's PID namespace")
	}
	for _, p := range []*ctrPod{shared, private} {
		p.removeAll()
	}
	e.assertNoContainerLeftovers(procs...)
}
