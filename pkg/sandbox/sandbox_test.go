package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/netns"
)

func TestCgroupPath(t *testing.T) {
	cases := []struct {
		driver, parent, want string
		bad                  bool
	}{
		{"cgroupfs", "", "", false},
		{"cgroupfs", "/kubepods/burstable/pod12", "/kubepods/burstable/pod12/crid-ID", false},
		{"cgroupfs", "kubepods/pod1/", "/kubepods/pod1/crid-ID", false},
		{"cgroupfs", "/kubepods/../etc", "", true},
		{"systemd", "kubepods-burstable-pod12.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/crid-ID.scope", false},
		{"systemd", "kubepods.slice", "/kubepods.slice/crid-ID.scope", false},
		{"systemd", "/kubepods/pod1", "", true},
		{"systemd", "a--b.slice", "", true},
	}
	for _, tc := range cases {
		got, err := CgroupPath(tc.driver, tc.parent, "ID")
		if tc.bad {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("CgroupPath(%s, %q) = %q, %v; want InvalidArgument", tc.driver, tc.parent, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CgroupPath(%s, %q) = %q, %v; want %q", tc.driver, tc.parent, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Config { return &Config{Name: "p", Namespace: "ns", UID: "u", Hostname: "p-1"} }
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "required"},
		{"slash in uid", func(c *Config) { c.UID = "a/b" }, "not a valid name"},
		{"bad hostname", func(c *Config) { c.Hostname = "under_score" }, "hostname"},
		{"net sysctl", func(c *Config) { c.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} }, ""},
		{"ipc sysctl", func(c *Config) { c.Sysctls = map[string]string{"kernel.shmmax": "1"} }, ""},
		{"node sysctl", func(c *Config) { c.Sysctls = map[string]string{"kernel.pid_max": "1"} }, "not namespaced"},
		{"net sysctl on host network", func(c *Config) {
			c.HostNetwork = true
			c.Sysctls = map[string]string{"net.core.somaxconn": "1"}
		}, "host network"},
		{"ipc sysctl on host ipc", func(c *Config) { c.HostIPC = true; c.Sysctls = map[string]string{"kernel.msgmax": "1"} }, "host IPC"},
		{"path in sysctl", func(c *Config) { c.Sysctls = map[string]string{"net/../../x": "1"} }, "not a valid name"},
		{"relative cgroup parent", func(c *Config) { c.CgroupParent = "kubepods" }, "absolute"},
		{"bad bandwidth", func(c *Config) { c.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "lots"} }, "bandwidth"},
		{"bad port", func(c *Config) { c.PortMappings = []netns.PortMapping{{ContainerPort: 70000}} }, "port"},
		{"bad protocol", func(c *Config) { c.PortMappings = []netns.PortMapping{{ContainerPort: 80, Protocol: "icmp"}} }, "protocol"},
		{"bad host IP", func(c *Config) {
			c.PortMappings = []netns.PortMapping{{ContainerPort: 80, HostPort: 80, HostIP: "localhost"}}
		}, "host IP"},
		{"bad DNS server", func(c *Config) { c.DNS = &netns.DNS{Servers: []string{"dns.example"}} }, "DNS server"},
		{"DNS search with space", func(c *Config) { c.DNS = &netns.DNS{Searches: []string{"a b"}} }, "DNS search"},
		{"sysctl value with newline", func(c *Config) { c.Sysctls = map[string]string{"net.core.somaxconn": "1\nkernel.x=1"} }, "newline"},
	}
	for _, tc := range cases {
		c := ok()
		tc.mutate(c)
		err := Validate(c)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	got := ResolvConf(&netns.DNS{Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"ns.svc", "svc"}, Options: []string{"ndots:5"}})
	want := "search ns.svc svc\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:5\n"
	if got != want {
		t.Errorf("ResolvConf = %q, want %q", got, want)
	}
	if h := Hosts("web", "10.1.2.3"); !strings.HasPrefix(h, "127.0.0.1\tlocalhost\n") || !strings.HasSuffix(h, "10.1.2.3\tweb\n") {
		t.Errorf("Hosts = %q", h)
	}
	if h := Hosts("web", ""); strings.Contains(h, "web") {
		t.Errorf("Hosts without IP names the pod: %q", h)
	}
}
