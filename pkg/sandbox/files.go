package sandbox

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/netns"
)

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	sysctlKey = regexp.MustCompile(`^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$`)
)

// Validate checks a config before anything is created.
func Validate(c *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("pod sandbox config: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
	}
	if c.Name == "" || c.Namespace == "" || c.UID == "" {
		return bad("metadata name, namespace and uid are required (got %q, %q, %q)", c.Name, c.Namespace, c.UID)
	}
	for _, s := range []string{c.Name, c.Namespace, c.UID} {
		if len(s) > 253 || strings.ContainsAny(s, "/\x00\n") {
			return bad("metadata value %q is not a valid name", s)
		}
	}
	if c.Hostname != "" && (len(c.Hostname) > 64 || !validHostname(c.Hostname)) {
		return bad("hostname %q is not a valid host name", c.Hostname)
	}
	if c.CgroupParent != "" {
		if !filepath.IsAbs(c.CgroupParent) && !strings.HasSuffix(c.CgroupParent, ".slice") {
			return bad("cgroup parent %q must be an absolute path or a systemd slice", c.CgroupParent)
		}
		for _, part := range strings.Split(c.CgroupParent, "/") {
			if part == ".." {
				return bad("cgroup parent %q escapes the cgroup root", c.CgroupParent)
			}
		}
	}
	for k, v := range c.Sysctls {
		if err := checkSysctl(k, c.HostNetwork, c.HostIPC); err != nil {
			return bad("%v", err)
		}
		if strings.ContainsAny(v, "\x00\n") {
			return bad("sysctl %s: value %q holds a newline or NUL", k, v)
		}
	}
	if _, err := netns.ParseBandwidth(c.Annotations); err != nil {
		return bad("%v", err)
	}
	for _, pm := range c.PortMappings {
		if pm.ContainerPort <= 0 || pm.ContainerPort > 65535 || pm.HostPort < 0 || pm.HostPort > 65535 {
			return bad("port mapping %d->%d out of range", pm.HostPort, pm.ContainerPort)
		}
		switch strings.ToLower(pm.Protocol) {
		case "", "tcp", "udp", "sctp":
		default:
			return bad("port mapping %d->%d: unsupported protocol %q", pm.HostPort, pm.ContainerPort, pm.Protocol)
		}
		if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
			return bad("port mapping %d->%d: host IP %q is not an IP address", pm.HostPort, pm.ContainerPort, pm.HostIP)
		}
	}
	if d := c.DNS; d != nil {
		for _, s := range d.Servers {
			if net.ParseIP(s) == nil {
				return bad("DNS server %q is not an IP address", s)
			}
		}
		for _, s := range append(append([]string{}, d.Searches...), d.Options...) {
			if s == "" || strings.ContainsAny(s, " \t\r\n\x00") {
				return bad("DNS search or option %q is empty or holds whitespace", s)
			}
		}
	}
	return nil
}

func validHostname(h string) bool {
	for _, l := range strings.Split(h, ".") {
		if !dnsLabel.MatchString(strings.ToLower(l)) {
			return false
		}
	}
	return true
}

// checkSysctl allows only namespaced sysctls, and not those of a namespace
// the pod shares with the host.
func checkSysctl(key string, hostNet, hostIPC bool) error {
	if !sysctlKey.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("sysctl %q is not a valid name", key)
	}
	switch {
	case strings.HasPrefix(key, "net."):
		if hostNet {
			return fmt.Errorf("sysctl %q needs the pod's own network namespace (pod uses host network)", key)
		}
	case key == "kernel.sem" || strings.HasPrefix(key, "kernel.shm") || strings.HasPrefix(key, "kernel.msg") || strings.HasPrefix(key, "fs.mqueue."):
		if hostIPC {
			return fmt.Errorf("sysctl %q needs the pod's own IPC namespace (pod uses host IPC)", key)
		}
	default:
		return fmt.Errorf("sysctl %q is not namespaced; it would change the node", key)
	}
	return nil
}

// isNetSysctl tells a network sysctl (set in the pod's netns after CNI ADD)
// from an IPC one (set by the infra in its IPC namespace); checkSysctl has
// allowed only these two kinds.
func isNetSysctl(key string) bool { return strings.HasPrefix(key, "net.") }

// splitSysctls sorts a validated config's sysctls by namespace.
func splitSysctls(c *Config) (netSysctls, ipcSysctls map[string]string) {
	netSysctls, ipcSysctls = map[string]string{}, map[string]string{}
	for k, v := range c.Sysctls {
		if isNetSysctl(k) {
			netSysctls[k] = v
		} else {
			ipcSysctls[k] = v
		}
	}
	return netSysctls, ipcSysctls
}

// sysctlPath is the /proc/sys file of a validated sysctl name.
func sysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

// ResolvConf renders /etc/resolv.conf from DNS settings.
func ResolvConf(dns *netns.DNS) string {
	var b strings.Builder
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	for _, s := range dns.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	return b.String()
}

// Hosts renders the pod's /etc/hosts; kubelet may mount its own instead.
func Hosts(hostname, ip string) string {
	s := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	if ip != "" && hostname != "" {
		s += ip + "\t" + hostname + "\n"
	}
	return s
}

// writeFiles writes hostname, hosts and resolv.conf into dir.
func writeFiles(dir string, c *Config, ip string) error {
	resolv := ""
	if c.DNS != nil && (len(c.DNS.Servers)+len(c.DNS.Searches)+len(c.DNS.Options)) > 0 {
		resolv = ResolvConf(c.DNS)
	} else {
		host, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("read host resolv.conf: %w", err)
		}
		resolv = string(host)
	}
	hostname := effectiveHostname(c)
	hosts := Hosts(hostname, ip)
	if c.HostNetwork {
		// The pod is the node, network-wise: it sees the node's names.
		if data, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(data)
		}
	}
	for name, data := range map[string]string{"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": resolv} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return fmt.Errorf("write pod %s: %w", name, err)
		}
	}
	return nil
}
