package oci

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// capNames are the Linux capabilities by number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// DefaultCapabilities are the capabilities of an unprivileged container
// that asks for none: containerd's (and Docker's) default set.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// CapabilitiesFromMask names the capabilities set in mask (as in the CapBnd
// line of /proc/self/status).
func CapabilitiesFromMask(mask uint64) []string {
	var out []string
	for i, n := range capNames {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// capNumber returns the number of a capability name, or -1.
func capNumber(name string) int { return slices.Index(capNames, name) }

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN"; unknown names are an error.
func normalizeCap(c string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if capNumber(n) < 0 {
		return "", invalid("unknown capability %q", c)
	}
	return n, nil
}

// capSet is a set of capabilities kept in capability-number order.
type capSet map[string]bool

func newCapSet(names []string) capSet {
	s := capSet{}
	for _, n := range names {
		s[n] = true
	}
	return s
}

func (s capSet) list() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b string) int { return capNumber(a) - capNumber(b) })
	return out
}

// capabilities computes the process's capability sets.
//
// The bounding set starts as DefaultCapabilities (all of the host's for a
// privileged container); CRI add_capabilities then drop_capabilities apply
// in that order, where "ALL" in add means the host's whole bounding set and
// "ALL" in drop empties the set before the named adds. Every set is then
// intersected with crid's own bounding set: the runtime cannot grant what
// crid lacks (here CAP_SYS_RESOURCE), so such requests become warnings.
//
// root (uid 0) gets the set as effective and permitted. A non-root user gets
// it as bounding only, with empty effective and permitted sets, as Docker
// does: the kernel clears them on the execve of the container's command
// anyway (no file capabilities, no ambient), so this only states the truth.
// add_ambient_capabilities are raised in the inheritable, permitted,
// effective and ambient sets, so they survive that execve for any user.
func (g *gen) capabilities() error {
	host := newCapSet(g.host.CapabilityBoundingSet)
	set := newCapSet(DefaultCapabilities)
	if g.sc.GetPrivileged() {
		set = newCapSet(g.host.CapabilityBoundingSet)
	}
	var ambient []string
	if c := g.sc.GetCapabilities(); c != nil && !g.sc.GetPrivileged() {
		add, addAll, err := capList(c.GetAddCapabilities())
		if err != nil {
			return err
		}
		drop, dropAll, err := capList(c.GetDropCapabilities())
		if err != nil {
			return err
		}
		if ambient, _, err = capList(c.GetAddAmbientCapabilities()); err != nil {
			return err
		}
		if addAll {
			set = newCapSet(g.host.CapabilityBoundingSet)
		}
		if dropAll {
			set = capSet{}
		}
		for _, n := range add {
			set[n] = true
		}
		for _, n := range drop {
			delete(set, n)
		}
	}
	for _, n := range set.list() {
		if !host[n] {
			delete(set, n)
			g.warnf("capability %s is not in crid's bounding set; not granted", n)
		}
	}
	amb := capSet{}
	for _, n := range ambient {
		if !set[n] {
			return invalid("ambient capability %s is not in the container's capability set", n)
		}
		amb[n] = true
	}
	caps := &specs.LinuxCapabilities{Bounding: set.list()}
	if g.spec.Process.User.UID == 0 {
		caps.Effective, caps.Permitted = set.list(), set.list()
	} else if len(amb) > 0 {
		caps.Effective, caps.Permitted = amb.list(), amb.list()
	}
	if len(amb) > 0 {
		caps.Inheritable, caps.Ambient = amb.list(), amb.list()
	}
	g.spec.Process.Capabilities = caps
	return nil
}

// capList normalizes a CRI capability list; all reports an "ALL" entry.
func capList(in []string) (out []string, all bool, err error) {
	for _, c := range in {
		if strings.EqualFold(strings.TrimSpace(c), "ALL") {
			all = true
			continue
		}
		n, err := normalizeCap(c)
		if err != nil {
			return nil, false, err
		}
		out = append(out, n)
	}
	return out, all, nil
}
