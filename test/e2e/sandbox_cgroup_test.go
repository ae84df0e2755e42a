package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func TestInfraJoinsPodCgroupParent(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	top := fmt.Sprintf("crid-e2e-%d", rand.IntN(1_000_000))
	parent := "/" + top + "/podu1"
	t.Cleanup(func() {
		hs, _ := filepath.Glob("/sys/fs/cgroup/*/" + top)
		if _, err := os.Stat("/sys/fs/cgroup/" + top); err == nil {
			hs = append(hs, "/sys/fs/cgroup/"+top)
		}
		for _, h := range hs {
			os.Remove(filepath.Join(h, "podu1"))
			os.Remove(h)
		}
	})
	cfg := podConfig("cg")
	cfg.Linux = &runtime.LinuxPodSandboxConfig{CgroupParent: parent}
	id := runPod(t, d, cfg)
	_, info := podStatus(t, d, id)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	want := parent + "/crid-" + id
	if !strings.Contains(string(data), want) {
		t.Fatalf("infra cgroups:\n%s\nwant %s", data, want)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	leaves, _ := filepath.Glob("/sys/fs/cgroup/*" + want)
	if _, err := os.Stat("/sys/fs/cgroup" + want); err == nil {
		leaves = append(leaves, "/sys/fs/cgroup"+want)
	}
	if len(leaves) > 0 {
		t.Fatalf("pod cgroups left after removal: %v", leaves)
	}
	// crid made the parents too (kubelet had not): it removes them as well.
	if made, _ := filepath.Glob("/sys/fs/cgroup/*/" + top); len(made) > 0 {
		t.Errorf("cgroup parents crid created are left: %v", made)
	}
	assertNoPodLeftovers(t, d, n, info.Pid)
}
