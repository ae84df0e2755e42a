package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/test/framework"
)

// serveInPod listens on port inside the pod's network namespace and answers
// each connection with msg.
func serveInPod(t *testing.T, netnsPath string, port int, msg string) {
	ns, err := netns.Load(netnsPath)
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatalf("listen in pod: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, msg)
			c.Close()
		}
	}()
}

func dialRead(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestRunPodSandboxNetworkPortsAndCleanup(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	ctx := ctxT(t)
	hostPort := framework.FreePort(t)
	cfg := podConfig("web")
	cfg.PortMappings = []*runtime.PortMapping{{ContainerPort: 8080, HostPort: int32(hostPort), HostIp: "127.0.0.1"}}
	cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"e2e.svc.cluster.local"}, Options: []string{"ndots:5"}}
	cfg.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "2048"}}
	id := runPod(t, d, cfg)

	st, info := podStatus(t, d, id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY || st.Network.GetIp() == "" || st.Metadata.Name != "web" || st.RuntimeHandler != "runc" {
		t.Fatalf("status = %v", st)
	}
	ip := st.Network.Ip
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	if !subnet.Contains(net.ParseIP(ip)) {
		t.Fatalf("pod IP %s outside %s", ip, n.Subnet)
	}
	ns, err := netns.Load(info.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []net.Addr
	ns.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err == nil {
			addrs, err = ifc.Addrs()
		}
		return err
	})
	if len(addrs) == 0 || !strings.HasPrefix(addrs[0].String(), ip+"/") {
		t.Fatalf("eth0 in the pod has %v, want %s", addrs, ip)
	}
	// Namespaced settings were applied inside the pod only.
	for _, c := range [][]string{
		{"-u", "hostname"}, {"-i", "cat", "/proc/sys/kernel/shmmni"}, {"-n", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"},
	} {
		out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(info.Pid)}, c...)...).Output()
		want := map[string]string{"-u": "web", "-i": "2048", "-n": "0"}[c[0]]
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("nsenter %v = %q, %v; want %q", c, out, err, want)
		}
	}
	if host, _ := os.ReadFile("/proc/sys/kernel/shmmni"); strings.TrimSpace(string(host)) == "2048" {
		t.Errorf("kernel.shmmni leaked to the host")
	}
	serveInPod(t, info.NetnsPath, 8080, "hello from pod")
	if got := dialRead(t, net.JoinHostPort(ip, "8080")); got != "hello from pod" {
		t.Fatalf("via pod IP: %q", got)
	}
	if got := dialRead(t, fmt.Sprintf("127.0.0.1:%d", hostPort)); got != "hello from pod" {
		t.Fatalf("via host port: %q", got)
	}

	list, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web"}}})
	if err != nil || len(list.Items) != 1 || list.Items[0].Id != id {
		t.Fatalf("list by label = %v, %v", list, err)
	}
	for _, f := range []*runtime.PodSandboxFilter{
		{LabelSelector: map[string]string{"app": "other"}},
		{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}},
		{Id: "ffff"},
	} {
		if l, _ := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f}); len(l.GetItems()) != 0 {
			t.Errorf("filter %v matched %v", f, l.Items)
		}
	}
	if l, _ := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: id[:8]}}); len(l.GetItems()) != 1 {
		t.Errorf("id prefix filter found %d", len(l.GetItems()))
	}

	// Stopping an unknown sandbox succeeds (CRI: resources already reclaimed).
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: "0123456789abcdef"}); err != nil {
		t.Fatalf("stop of an unknown sandbox: %v", err)
	}
	for range 2 { // StopPodSandbox is idempotent
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := podStatus(t, d, id); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("after stop: %v", st.State)
	}
	if ips := n.Allocations(); len(ips) > 0 {
		t.Errorf("IP still allocated after stop: %v", ips)
	}
	for range 2 { // RemovePodSandbox is idempotent
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("status of removed pod: %v", err)
	}
	assertNoPodLeftovers(t, d, n, info.Pid)
}

func TestRunPodSandboxRejectsBadRequestsLeavingNothing(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	ctx := ctxT(t)
	first := runPod(t, d, podConfig("dup"))
	_, err := d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("dup")})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), first) {
		t.Fatalf("duplicate pod: %v, want AlreadyExists naming %s", err, first)
	}
	d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: first})

	noUID := podConfig("nouid")
	noUID.Metadata.Uid = ""
	hostSysctl := podConfig("sysctl")
	hostSysctl.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"vm.swappiness": "1"}}
	badDNS := podConfig("dns")
	badDNS.DnsConfig = &runtime.DNSConfig{Servers: []string{"not-an-ip"}}
	escape := podConfig("cg")
	escape.Linux = &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods/../../etc"}
	for _, tc := range []struct {
		name    string
		req     *runtime.RunPodSandboxRequest
		code    codes.Code
		mention string
	}{
		{"no metadata", &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{}}, codes.InvalidArgument, "metadata"},
		{"no uid", &runtime.RunPodSandboxRequest{Config: noUID}, codes.InvalidArgument, "uid"},
		{"unknown handler", &runtime.RunPodSandboxRequest{Config: podConfig("h"), RuntimeHandler: "kata"}, codes.InvalidArgument, "kata"},
		{"node sysctl", &runtime.RunPodSandboxRequest{Config: hostSysctl}, codes.InvalidArgument, "vm.swappiness"},
		{"cgroup escape", &runtime.RunPodSandboxRequest{Config: escape}, codes.InvalidArgument, "cgroup"},
		{"bad DNS server", &runtime.RunPodSandboxRequest{Config: badDNS}, codes.InvalidArgument, "not-an-ip"},
	} {
		_, err := d.Runtime.RunPodSandbox(ctx, tc.req)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.code, tc.mention)
		}
	}
	// Stop and Remove of an unknown sandbox succeed (CRI idempotence);
	// its status is NotFound.
	unknown := strings.Repeat("0", 64)
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: unknown}); err != nil {
		t.Errorf("stop of an unknown sandbox: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: unknown}); err != nil {
		t.Errorf("remove of an unknown sandbox: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: unknown}); status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown sandbox: %v, want NotFound", err)
	}
	assertNoPodLeftovers(t, d, n)
}

func TestCNIFailureRollsBackEverything(t *testing.T) {
	n := framework.NewNetwork(t, "")
	broken := `{"cniVersion":"1.0.0","name":"crid-e2e","plugins":[{"type":"bridge","bridge":"` + n.Bridge +
		`","ipam":{"type":"host-local","ranges":[[{"subnet":"not-a-subnet"}]],"dataDir":"` + n.DataDir + `"}}]}`
	os.WriteFile(n.ConfDir+"/10-e2e.conflist", []byte(broken), 0o644)
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	_, err := d.Runtime.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("broken")})
	if err == nil || !strings.Contains(err.Error(), "not-a-subnet") {
		t.Fatalf("RunPodSandbox with a broken network: %v", err)
	}
	t.Logf("error: %v", err)
	assertNoPodLeftovers(t, d, n)
}

func TestTwentyConcurrentPods(t *testing.T) {
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	const pods = 20
	ids := make([]string, pods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := d.Runtime.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig(fmt.Sprintf("c%02d", i))})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = resp.PodSandboxId
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	var pids []int
	for _, id := range ids {
		if id == "" {
			continue
		}
		st, info := podStatus(t, d, id)
		if seen[st.Network.Ip] {
			t.Errorf("IP %s given twice", st.Network.Ip)
		}
		seen[st.Network.Ip] = true
		pids = append(pids, info.Pid)
	}
	if len(n.Allocations()) != pods {
		t.Errorf("%d allocations for %d pods", len(n.Allocations()), pods)
	}
	stream, err := d.Runtime.StreamPodSandboxes(ctxT(t), &runtime.StreamPodSandboxesRequest{
		Filter: &runtime.PodSandboxFilter{LabelSelector: map[string]string{"suite": "e2e"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	streamed := 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		streamed += len(resp.PodSandboxes)
	}
	if streamed != pods {
		t.Errorf("StreamPodSandboxes sent %d pods, want %d", streamed, pods)
	}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id == "" {
				return
			}
			if _, err := d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	assertNoPodLeftovers(t, d, n, pids...)
}
