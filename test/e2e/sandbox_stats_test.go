package e2e

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodSandboxStats: a pod's stats hold its containers' stats, a process
// count, CPU and memory, and its eth0 counters, which grow with traffic to
// another pod; ListPodSandboxStats filters by label.
func TestPodSandboxStats(t *testing.T) {
	e := newCtrEnv(t)
	a := e.pod("stats-a", func(c *runtime.PodSandboxConfig) { c.Labels["which"] = "a" })
	b := e.pod("stats-b", nil)
	busybox := e.image("busybox")
	ca := a.run(ctrConfig("c", busybox, "sleep", "3600"))
	b.run(ctrConfig("c", busybox, "sleep", "3600"))
	st, _ := podStatus(t, e.d, b.id)
	peer := st.GetNetwork().GetIp()

	stats := func() *runtime.PodSandboxStats {
		t.Helper()
		r, err := e.d.Runtime.PodSandboxStats(ctxT(t), &runtime.PodSandboxStatsRequest{PodSandboxId: a.id})
		if err != nil {
			t.Fatal(err)
		}
		return r.Stats
	}
	before := stats()
	l := before.GetLinux()
	if before.GetAttributes().GetId() != a.id || len(l.GetContainers()) != 1 || l.Containers[0].Attributes.Id != ca {
		t.Fatalf("pod stats attributes/containers: %v", before)
	}
	if l.GetProcess().GetProcessCount().GetValue() < 1 || l.GetCpu().GetUsageCoreNanoSeconds() == nil || l.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("pod stats process %v cpu %v memory %v", l.GetProcess(), l.GetCpu(), l.GetMemory())
	}
	if l.GetNetwork().GetDefaultInterface().GetName() != "eth0" {
		t.Fatalf("pod network stats: %v", l.GetNetwork())
	}
	r, err := e.d.Runtime.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: ca, Cmd: []string{"ping", "-c", "3", "-W", "1", peer}, Timeout: 20})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("ping %s from pod a: %v %s %s", peer, err, r.GetStdout(), r.GetStderr())
	}
	after := stats().GetLinux().GetNetwork().GetDefaultInterface()
	was := l.GetNetwork().GetDefaultInterface()
	if after.GetTxBytes().GetValue() <= was.GetTxBytes().GetValue() || after.GetRxBytes().GetValue() <= was.GetRxBytes().GetValue() {
		t.Errorf("eth0 counters did not grow with a ping: before %v after %v", was, after)
	}

	list, err := e.d.Runtime.ListPodSandboxStats(ctxT(t), &runtime.ListPodSandboxStatsRequest{Filter: &runtime.PodSandboxStatsFilter{LabelSelector: map[string]string{"which": "a"}}})
	if err != nil || len(list.Stats) != 1 || list.Stats[0].Attributes.Id != a.id {
		t.Errorf("ListPodSandboxStats by label: %v %v", list, err)
	}
}
