package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestSetupAttachesPodAndTeardownReleases(t *testing.T) {
	n := newTestNet(t)
	n.writeConf(t, "10-test.conflist", n.conf)
	m := n.manager(t)
	if ok, reason, msg := m.Ready(); !ok {
		t.Fatalf("Ready = false, %s: %s", reason, msg)
	}

	ns := newPin(t, n.pinDir, "sb-setup")
	hostPort := int32(30000 + rand.IntN(20000))
	pn := PodNetwork{
		ID: "sb-setup", NetNSPath: ns.Path(), PodName: "web", PodNamespace: "default", PodUID: "uid-1",
		PortMappings: []PortMapping{
			{HostPort: hostPort, ContainerPort: 80, Protocol: "TCP", HostIP: "127.0.0.1"},
			{ContainerPort: 8080}, // no host port: not passed
		},
		DNS: &DNS{Servers: []string{"10.0.0.10"}, Searches: []string{"default.svc"}},
	}
	ctx := context.Background()
	res, err := m.Setup(ctx, pn)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = m.Teardown(ctx, pn) }) // on failure only; idempotent

	_, subnet, _ := net.ParseCIDR(n.subnet)
	if ip := net.ParseIP(res.IP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("Setup IP = %q, want an address in %s (result %s)", res.IP, n.subnet, res.Raw)
	}
	if res.Network != n.name || res.IfName != "eth0" || len(res.AdditionalIPs) != 0 {
		t.Fatalf("Result = %+v", res)
	}
	var raw struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []any  `json:"ips"`
	}
	if err := json.Unmarshal(res.Raw, &raw); err != nil || !strings.HasPrefix(raw.CNIVersion, "1.") || len(raw.IPs) != 1 {
		t.Fatalf("raw result %s: %v", res.Raw, err)
	}

	err = ns.Do(func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := eth0.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), res.IP+"/") {
				lo, err := net.InterfaceByName("lo")
				if err == nil && lo.Flags&net.FlagUp == 0 {
					return fmt.Errorf("lo is down")
				}
				return err
			}
		}
		return fmt.Errorf("eth0 addresses %v lack %s", addrs, res.IP)
	})
	if err != nil {
		t.Fatalf("inside the pod netns: %v", err)
	}
	if _, err := os.Stat(n.leasePath(res.IP)); err != nil {
		t.Fatalf("host-local lease: %v", err)
	}
	if !strings.Contains(natRules(), pn.ID) {
		t.Fatalf("no portmap rule for %s:\n%s", pn.ID, natRules())
	}
	// No Check here: portmap 1.1.1 CHECK wrongly looks for IPv6 rules of an
	// IPv4-only pod (containernetworking/plugins#819).

	if err := m.Teardown(ctx, pn); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if _, err := os.Stat(n.leasePath(res.IP)); !os.IsNotExist(err) {
		t.Fatalf("lease of %s survives Teardown: %v", res.IP, err)
	}
	if rules := natRules(); strings.Contains(rules, pn.ID) {
		t.Fatalf("portmap rules for %s survive Teardown:\n%s", pn.ID, rules)
	}
	if err := ns.Do(func() error {
		if _, err := net.InterfaceByName("eth0"); err == nil {
			return errors.New("eth0 still exists")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, pn); err != nil {
		t.Fatalf("second Teardown: %v", err)
	}
}

func TestConcurrentPods(t *testing.T) {
	n := newTestNet(t)
	n.writeConf(t, "10-test.conflist", n.conf)
	m := n.manager(t)
	const pods = 10
	var wg sync.WaitGroup
	ips := make([]string, pods)
	errs := make([]error, pods)
	for i := range pods {
		wg.Go(func() {
			id := fmt.Sprintf("sb-c%d", i)
			ns, err := New(n.pinDir, id)
			if err != nil {
				errs[i] = err
				return
			}
			defer func() { errs[i] = errors.Join(errs[i], ns.Remove()) }()
			pn := PodNetwork{ID: id, NetNSPath: ns.Path()}
			res, err := m.Setup(context.Background(), pn)
			if err != nil {
				errs[i] = err
				return
			}
			ips[i] = res.IP
			errs[i] = m.Teardown(context.Background(), pn)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range pods {
		if errs[i] != nil {
			t.Fatalf("pod %d: %v", i, errs[i])
		}
		if seen[ips[i]] {
			t.Fatalf("IP %s handed out twice", ips[i])
		}
		seen[ips[i]] = true
	}
	if leases := n.leases(t); len(leases) != 0 {
		t.Fatalf("leases left: %v", leases)
	}
}

func TestTeardownAfterNetnsRemoved(t *testing.T) {
	n := newTestNet(t)
	n.writeConf(t, "10-test.conflist", n.conf)
	m := n.manager(t)
	ns, pn, res := n.setupPod(t, m, "sb-gone")
	if err := m.Check(context.Background(), pn); err != nil {
		t.Fatalf("Check: %v", err)
	}

	if err := ns.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(context.Background(), pn); !errdefs.IsNotFound(err) {
		t.Fatalf("Check with the netns gone = %v, want ErrNotFound", err)
	}
	if err := m.Teardown(context.Background(), pn); err != nil {
		t.Fatalf("Teardown with the netns gone: %v", err)
	}
	if _, err := os.Stat(n.leasePath(res.IP)); !os.IsNotExist(err) {
		t.Fatalf("lease of %s survives Teardown: %v", res.IP, err)
	}
}

func TestTeardownUsesCachedConfigWhenConfigRemoved(t *testing.T) {
	n := newTestNet(t)
	n.writeConf(t, "10-test.conflist", n.conf)
	m := n.manager(t)
	_, pn, res := n.setupPod(t, m, "sb-cached")

	if err := os.Remove(filepath.Join(n.confDir, "10-test.conflist")); err != nil {
		t.Fatal(err)
	}
	_ = m.Reload()
	if ok, _, _ := m.Ready(); ok {
		t.Fatal("Ready with the config removed")
	}
	// A manager started afresh (a crid restart) only has the cache.
	m2 := n.manager(t)
	if err := m2.Teardown(context.Background(), pn); err != nil {
		t.Fatalf("Teardown from cache: %v", err)
	}
	if _, err := os.Stat(n.leasePath(res.IP)); !os.IsNotExist(err) {
		t.Fatalf("lease of %s survives Teardown: %v", res.IP, err)
	}
}

func TestGCRemovesStaleAttachments(t *testing.T) {
	n := newTestNet(t)
	n.writeConf(t, "10-test.conflist", n.conf)
	m := n.manager(t)
	_, _, keep := n.setupPod(t, m, "sb-keep")
	_, _, stale := n.setupPod(t, m, "sb-stale")

	if err := m.GC(context.Background(), []string{"sb-keep"}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, err := os.Stat(n.leasePath(stale.IP)); !os.IsNotExist(err) {
		t.Fatalf("stale lease %s survives GC: %v", stale.IP, err)
	}
	if _, err := os.Stat(n.leasePath(keep.IP)); err != nil {
		t.Fatalf("GC released a valid lease: %v", err)
	}
}

func TestSetupFailureLeavesNothing(t *testing.T) {
	n := newTestNet(t)
	n.writeConf(t, "10-test.conflist", n.conf)
	m := n.manager(t)
	pn := PodNetwork{ID: "sb-fail", NetNSPath: filepath.Join(t.TempDir(), "not-a-netns")}
	if err := os.WriteFile(pn.NetNSPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(context.Background(), pn); err == nil {
		t.Fatal("Setup into a plain file succeeded")
	}
	if leases := n.leases(t); len(leases) != 0 {
		t.Fatalf("leases left after a failed Setup: %v", leases)
	}
	if atts, _ := m.cni.GetCachedAttachments(pn.ID); len(atts) != 0 {
		t.Fatalf("cache entries left after a failed Setup: %d", len(atts))
	}
}

func TestWatcherFollowsConfigDir(t *testing.T) {
	n := newTestNet(t)
	m := n.manager(t, WithPollInterval(20*time.Millisecond))
	ok, reason, msg := m.Ready()
	if ok || reason != NetworkNotReadyReason || !strings.Contains(msg, n.confDir) {
		t.Fatalf("Ready on empty dir = %v, %q, %q", ok, reason, msg)
	}
	if _, err := m.Setup(context.Background(), PodNetwork{ID: "x", NetNSPath: "/x"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Setup without config = %v, want ErrUnavailable", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)

	waitReady := func(want bool) (string, string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ok, reason, msg := m.Ready()
			if ok == want {
				return reason, msg
			}
			if time.Now().After(deadline) {
				t.Fatalf("Ready stayed %v: %s %s", ok, reason, msg)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	n.writeConf(t, "10-test.conflist", n.conf)
	waitReady(true)
	if m.NetworkName() != n.name {
		t.Fatalf("NetworkName = %q", m.NetworkName())
	}

	// A broken file sorting first wins, with an error naming it.
	n.writeConf(t, "05-broken.conflist", []byte(`{"cniVersion": "1.0.0", "name": `))
	_, msg = waitReady(false)
	if !strings.Contains(msg, "05-broken.conflist") {
		t.Fatalf("broken config message %q does not name the file", msg)
	}
	if err := os.Remove(filepath.Join(n.confDir, "05-broken.conflist")); err != nil {
		t.Fatal(err)
	}
	waitReady(true)

	if err := os.Remove(filepath.Join(n.confDir, "10-test.conflist")); err != nil {
		t.Fatal(err)
	}
	if _, msg := waitReady(false); !strings.Contains(msg, "no network config found") {
		t.Fatalf("message after removal = %q", msg)
	}
}

func TestConfigLoading(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		network string // "" = not ready
		plugins int
		msg     string
	}{
		{
			name:    "single .conf becomes a list",
			files:   map[string]string{"10-a.conf": `{"cniVersion":"0.4.0","name":"a","type":"loopback"}`},
			network: "a", plugins: 1,
		},
		{
			name: "first by file name wins",
			files: map[string]string{
				"20-b.conflist": `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"loopback"}]}`,
				"10-a.json":     `{"cniVersion":"1.0.0","name":"a","type":"loopback"}`,
				"00-x.txt":      `ignored`,
			},
			network: "a", plugins: 1,
		},
		{
			name:    ".conf holding a list",
			files:   map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"loopback"},{"type":"portmap"}]}`},
			network: "a", plugins: 2,
		},
		{
			name:  "plugin binary missing",
			files: map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"crid-no-such-plugin"}]}`},
			msg:   "crid-no-such-plugin",
		},
		{
			name:  "list without plugins",
			files: map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[]}`},
			msg:   "10-a.conflist",
		},
		{
			name:  "plugin without type",
			files: map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","name":"a"}`},
			msg:   "missing 'type'",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for f, data := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := NewManager(dir, []string{pluginDir}, filepath.Join(dir, "cache"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(pluginDir, "loopback")); err != nil && tc.network != "" {
				t.Skip("CNI plugins not installed")
			}
			ok, reason, msg := m.Ready()
			if tc.network != "" {
				list, err := m.current()
				if !ok || err != nil || list.Name != tc.network || len(list.Plugins) != tc.plugins {
					t.Fatalf("Ready = %v %s %s; network %v, err %v", ok, reason, msg, list, err)
				}
				return
			}
			if ok || reason != NetworkNotReadyReason || !strings.Contains(msg, tc.msg) {
				t.Fatalf("Ready = %v, %q, %q; want not ready mentioning %q", ok, reason, msg, tc.msg)
			}
		})
	}
}
