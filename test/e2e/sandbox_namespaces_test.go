package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func nsLink(t *testing.T, pid any, kind string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%v/ns/%s", pid, kind))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mountsUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// TestPodNamespacesFilesAndShm checks what a pod's containers will join:
// the infra's own IPC, UTS and (shared PID mode) PID namespaces, their pins,
// /dev/shm of shm_size, and the /etc files; and that Stop frees
// the netns and the mounts at once.
func TestPodNamespacesFilesAndShm(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	cfg := podConfig("ns")
	cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"e2e.svc.cluster.local"}, Options: []string{"ndots:5"}}
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD},
	}}
	id := runPod(t, d, cfg)
	st, info := podStatus(t, d, id)
	if got := st.GetLinux().GetNamespaces().GetOptions().GetPid(); got != runtime.NamespaceMode_POD {
		t.Errorf("status namespace options pid = %v", got)
	}
	dir := filepath.Join(d.State, "sandboxes", id)
	for _, kind := range []string{"ipc", "uts", "net", "pid"} {
		if nsLink(t, info.Pid, kind) == nsLink(t, "self", kind) {
			t.Errorf("infra shares the host's %s namespace", kind)
		}
	}
	for _, kind := range []string{"ipc", "uts"} {
		pin := filepath.Join(dir, "ns", kind)
		if statIno(t, pin) != statIno(t, fmt.Sprintf("/proc/%d/ns/%s", info.Pid, kind)) {
			t.Errorf("pin %s is not the infra's namespace", kind)
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Pid))
	if !strings.Contains(string(status), "NSpid:\t"+fmt.Sprint(info.Pid)+"\t1\n") {
		t.Errorf("infra is not PID 1 of its own PID namespace:\n%s", status)
	}
	var sf unix.Statfs_t
	if err := unix.Statfs(filepath.Join(dir, "shm"), &sf); err != nil || sf.Bsize*int64(sf.Blocks) != 64<<20 {
		t.Errorf("pod shm: size %d, %v; want the default shm_size, 64 MiB", sf.Bsize*int64(sf.Blocks), err)
	}
	for file, want := range map[string]string{
		"hostname":    "ns\n",
		"resolv.conf": "search e2e.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
	} {
		if got, _ := os.ReadFile(filepath.Join(dir, file)); string(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if hosts, _ := os.ReadFile(filepath.Join(dir, "hosts")); !strings.Contains(string(hosts), st.Network.Ip+"\tns\n") {
		t.Errorf("hosts lacks the pod's address:\n%s", hosts)
	}

	if _, err := d.Runtime.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(d.State); len(m) > 0 {
		t.Errorf("mounts left after stop: %v", m)
	}
	if _, err := os.Stat(info.NetnsPath); !os.IsNotExist(err) {
		t.Errorf("netns pin after stop: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	assertNoPodLeftovers(t, d, n, info.Pid)
}

// TestHostNetworkPod: no netns, no CNI, no IP of its own; the node's UTS
// namespace and names; host IPC means no pod IPC namespace and no shm.
func TestHostNetworkPod(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	cfg := podConfig("hostnet")
	cfg.Hostname = ""
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE},
	}}
	id := runPod(t, d, cfg)
	st, info := podStatus(t, d, id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY || st.Network.GetIp() != "" || info.NetnsPath != "" {
		t.Fatalf("host network pod: state %v ip %q netns %q", st.State, st.Network.GetIp(), info.NetnsPath)
	}
	for _, kind := range []string{"net", "uts", "ipc"} {
		if nsLink(t, info.Pid, kind) != nsLink(t, "self", kind) {
			t.Errorf("host network/IPC pod has its own %s namespace", kind)
		}
	}
	if n.Allocations() != nil {
		t.Errorf("host network pod got an IP: %v", n.Allocations())
	}
	dir := filepath.Join(d.State, "sandboxes", id)
	for _, p := range []string{"shm", "ns/ipc", "ns/uts"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists for a host IPC/network pod", p)
		}
	}
	host, _ := os.Hostname()
	if got, _ := os.ReadFile(filepath.Join(dir, "hostname")); string(got) != host+"\n" {
		t.Errorf("hostname file = %q, want the node's %q", got, host)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	assertNoPodLeftovers(t, d, n, info.Pid)
}

func statIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
