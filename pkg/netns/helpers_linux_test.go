package netns

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const pluginDir = "/usr/lib/cni"

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root")
	}
}

func requirePlugins(tb testing.TB, names ...string) {
	tb.Helper()
	requireRoot(tb)
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(pluginDir, n)); err != nil {
			tb.Skipf("CNI plugin %s not installed in %s", n, pluginDir)
		}
	}
}

// newPin creates a pinned netns under the test's temp dir, removed at cleanup.
func newPin(tb testing.TB, pinDir, name string, opts ...Option) *NetNS {
	tb.Helper()
	ns, err := New(pinDir, name, opts...)
	if err != nil {
		tb.Fatalf("New(%s): %v", name, err)
	}
	tb.Cleanup(func() {
		if err := ns.Remove(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	return ns
}

// testNet is a bridge network private to one test: its own bridge, subnet,
// IPAM data dir and CNI cache.
type testNet struct {
	name, bridge, subnet string
	confDir, cacheDir    string
	dataDir, pinDir      string
	conf                 []byte
}

// newTestNet prepares (but does not write) a bridge + portmap + loopback
// conflist and registers cleanup of the bridge and of portmap's shared
// chains when this test created them. The bridge is not a gateway and does
// no masquerading, so no host sysctl or NAT rule is changed.
func newTestNet(tb testing.TB) *testNet {
	tb.Helper()
	requirePlugins(tb, "bridge", "host-local", "portmap", "loopback")
	dir := tb.TempDir()
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	n := &testNet{
		name:     "crid-test-" + suffix,
		bridge:   "crid-t" + suffix,
		subnet:   fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256)),
		confDir:  filepath.Join(dir, "net.d"),
		cacheDir: filepath.Join(dir, "cache"),
		dataDir:  filepath.Join(dir, "ipam"),
		pinDir:   filepath.Join(dir, "netns"),
	}
	n.conf = []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}`, n.name, n.bridge, n.dataDir, n.subnet))
	if err := os.MkdirAll(n.confDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	hadChains := portmapChainsExist()
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Cannot find device") {
			tb.Errorf("cleanup: ip link del %s: %v: %s", n.bridge, err, out)
		}
		if !hadChains {
			removeEmptyPortmapChains(tb)
		}
	})
	return n
}

func (n *testNet) writeConf(tb testing.TB, file string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(n.confDir, file), data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func (n *testNet) manager(tb testing.TB, opts ...ManagerOption) *Manager {
	tb.Helper()
	m, err := NewManager(n.confDir, []string{pluginDir}, n.cacheDir, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// leasePath is host-local's record of an allocated address.
func (n *testNet) leasePath(ip string) string {
	return filepath.Join(n.dataDir, n.name, ip)
}

// leases lists the addresses host-local holds in this network.
func (n *testNet) leases(tb testing.TB) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(n.dataDir, n.name))
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "last_reserved_ip") && e.Name() != "lock" {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// setupPod creates a pinned netns and runs Setup; both undone at cleanup.
func (n *testNet) setupPod(tb testing.TB, m *Manager, id string) (*NetNS, PodNetwork, *Result) {
	tb.Helper()
	ns := newPin(tb, n.pinDir, id)
	pn := PodNetwork{ID: id, NetNSPath: ns.Path(), PodName: "p-" + id, PodNamespace: "default", PodUID: "uid-" + id}
	res, err := m.Setup(context.Background(), pn)
	if err != nil {
		tb.Fatalf("Setup(%s): %v", id, err)
	}
	tb.Cleanup(func() {
		if err := m.Teardown(context.Background(), pn); err != nil {
			tb.Errorf("cleanup: Teardown(%s): %v", id, err)
		}
	})
	return ns, pn, res
}

var portmapChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}

func natRules() string {
	out, _ := exec.Command("iptables", "-w", "-t", "nat", "-S").Output()
	return string(out)
}

func portmapChainsExist() bool {
	return strings.Contains(natRules(), "-N CNI-HOSTPORT-")
}

// removeEmptyPortmapChains deletes portmap's shared chains and the jumps to
// them, but only when they hold no rule of any pod (so nobody else uses them).
func removeEmptyPortmapChains(tb testing.TB) {
	rules := natRules()
	for _, line := range strings.Split(rules, "\n") {
		for _, c := range portmapChains {
			if strings.HasPrefix(line, "-A "+c+" ") && !isPortmapPlumbing(line) {
				return // a pod still has a rule here: leave the chains alone
			}
		}
	}
	for _, line := range strings.Split(rules, "\n") {
		if !strings.HasPrefix(line, "-A ") || !strings.Contains(line, "-j CNI-HOSTPORT-") {
			continue
		}
		args := append([]string{"-w", "-t", "nat", "-D"}, strings.Fields(line)[1:]...)
		if out, err := exec.Command("iptables", unquote(args)...).CombinedOutput(); err != nil {
			tb.Logf("cleanup: iptables %v: %v: %s", args, err, out)
		}
	}
	for _, c := range portmapChains {
		if !strings.Contains(rules, "-N "+c+"\n") {
			continue
		}
		for _, op := range []string{"-F", "-X"} {
			if out, err := exec.Command("iptables", "-w", "-t", "nat", op, c).CombinedOutput(); err != nil {
				tb.Errorf("cleanup: iptables %s %s: %v: %s", op, c, err, out)
			}
		}
	}
}

// isPortmapPlumbing reports rules portmap installs once for all pods.
func isPortmapPlumbing(line string) bool {
	return strings.Contains(line, "-j CNI-HOSTPORT-") || strings.Contains(line, "-j MARK") ||
		(strings.HasPrefix(line, "-A CNI-HOSTPORT-MASQ ") && strings.Contains(line, "-j MASQUERADE"))
}

// unquote strips the quotes iptables -S puts around comments.
func unquote(args []string) []string {
	var out []string
	var buf bytes.Buffer
	in := false
	for _, a := range args {
		switch {
		case !in && strings.HasPrefix(a, `"`) && !(len(a) > 1 && strings.HasSuffix(a, `"`)):
			in = true
			buf.Reset()
			buf.WriteString(strings.TrimPrefix(a, `"`))
		case in:
			buf.WriteString(" " + a)
			if strings.HasSuffix(a, `"`) {
				in = false
				out = append(out, strings.TrimSuffix(buf.String(), `"`))
			}
		default:
			out = append(out, strings.Trim(a, `"`))
		}
	}
	return out
}
