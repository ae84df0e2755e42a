package framework

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Network is a CNI bridge network private to one test: its own bridge
// name, subnet and host-local data dir.
type Network struct {
	ConfDir string
	DataDir string // host-local allocations
	Bridge  string
	Subnet  string
}

// NewNetwork writes a bridge+portmap+loopback conflist (pluginType replaces
// "bridge" when set, e.g. a wrapper script) and removes the bridge and the
// portmap chains it created when the test ends.
func NewNetwork(t testing.TB, pluginType string) *Network {
	t.Helper()
	base := t.TempDir()
	n := &Network{
		ConfDir: filepath.Join(base, "net.d"),
		DataDir: filepath.Join(base, "ipam"),
		Bridge:  fmt.Sprintf("crid%05d", rand.IntN(100000)),
		Subnet:  fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256)),
	}
	if pluginType == "" {
		pluginType = "bridge"
	}
	os.MkdirAll(n.ConfDir, 0o755)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"crid-e2e","plugins":[
 {"type":%q,"bridge":%q,"isGateway":false,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}`, pluginType, n.Bridge, n.Subnet, n.DataDir)
	if err := os.WriteFile(filepath.Join(n.ConfDir, "10-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	hadChains := portmapChainsExist()
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.Bridge).Run()
		if !hadChains {
			removePortmapChains()
		}
	})
	// The bridge is made here with the subnet's gateway address, so the host
	// reaches pod IPs (and portmap's 127.0.0.1 hostPorts) through it; with
	// isGateway the plugin would also switch on net.ipv4.ip_forward for the
	// whole node, which these tests do not need.
	gw := strings.TrimSuffix(n.Subnet, "0/24") + "1/24"
	for _, args := range [][]string{
		{"link", "add", "name", n.Bridge, "type", "bridge"},
		{"addr", "add", gw, "dev", n.Bridge},
		{"link", "set", n.Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	return n
}

// Allocations lists the IPs host-local still holds for this network.
func (n *Network) Allocations() []string {
	entries, _ := os.ReadDir(filepath.Join(n.DataDir, "crid-e2e"))
	var ips []string
	for _, e := range entries {
		if name := e.Name(); name != "lock" && !strings.HasPrefix(name, "last_reserved_ip") {
			ips = append(ips, name)
		}
	}
	return ips
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func portmapChainsExist() bool {
	return exec.Command("iptables", "-t", "nat", "-n", "-L", "CNI-HOSTPORT-DNAT").Run() == nil
}

// removePortmapChains deletes the shared chains portmap leaves behind, if
// they hold no rule of another pod.
func removePortmapChains() {
	out, err := exec.Command("iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").Output()
	if err != nil || strings.Count(string(out), "\n") > 1 {
		return
	}
	run := func(args ...string) { exec.Command("iptables", append([]string{"-t", "nat"}, args...)...).Run() }
	run("-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT")
	run("-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT")
	run("-D", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ")
	for _, c := range []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"} {
		run("-F", c)
		run("-X", c)
	}
}
