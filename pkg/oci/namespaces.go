package oci

import (
	"fmt"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// namespaces maps the NamespaceOption:
//
//	mount:   always a new one
//	network: POD -> the pod's (none listed = the host's when the pod has
//	         none), NODE -> the host's, CONTAINER -> a new one
//	ipc:     as network
//	uts:     the pod's, or the host's when the network is NODE
//	pid:     POD -> the pod's (pinned, or the infra's), CONTAINER -> a new
//	         one, NODE -> the host's, TARGET -> that of TargetPID
//	cgroup:  a new one on cgroup v2 unless privileged (as containerd)
//	user:    POD is refused: crid does not support user namespaces
//
// The hostname is set to the pod's when the container is in the pod's UTS
// namespace (the infra set it already; runc sets the same value again).
func (g *gen) namespaces() error {
	sb := g.req.Sandbox
	opts := g.sc.GetNamespaceOptions()
	if u := opts.GetUsernsOptions(); u != nil && u.GetMode() != runtime.NamespaceMode_NODE {
		return invalid("user namespaces (mode %s) are not supported by crid", u.GetMode())
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	join := func(t specs.LinuxNamespaceType, mode runtime.NamespaceMode, podPath string) error {
		switch mode {
		case runtime.NamespaceMode_POD:
			if podPath != "" {
				ns = append(ns, specs.LinuxNamespace{Type: t, Path: podPath})
			}
		case runtime.NamespaceMode_CONTAINER:
			ns = append(ns, specs.LinuxNamespace{Type: t})
		case runtime.NamespaceMode_NODE:
		default:
			return invalid("%s namespace mode %s is not supported", t, mode)
		}
		return nil
	}
	if err := join(specs.NetworkNamespace, opts.GetNetwork(), sb.NetNSPath); err != nil {
		return err
	}
	if err := join(specs.IPCNamespace, opts.GetIpc(), sb.IPCNSPath); err != nil {
		return err
	}
	if opts.GetNetwork() != runtime.NamespaceMode_NODE && sb.UTSNSPath != "" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: sb.UTSNSPath})
		hostname := sb.Hostname
		if hostname == "" {
			hostname = g.host.Hostname
		}
		g.spec.Hostname = hostname
	}
	switch opts.GetPid() {
	case runtime.NamespaceMode_POD:
		p := sb.PIDNSPath
		if p == "" && sb.InfraPID > 0 {
			p = fmt.Sprintf("/proc/%d/ns/pid", sb.InfraPID)
		}
		if p == "" {
			return fmt.Errorf("pod sandbox %q has no PID namespace to share (no pinned path, no infra pid): %w", sb.ID, errdefs.ErrFailedPrecondition)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: p})
	case runtime.NamespaceMode_CONTAINER:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case runtime.NamespaceMode_NODE:
	case runtime.NamespaceMode_TARGET:
		if opts.GetTargetId() == "" {
			return invalid("PID namespace mode TARGET needs a target_id")
		}
		if g.req.TargetPID <= 0 {
			return fmt.Errorf("target container %q has no running process: %w", opts.GetTargetId(), errdefs.ErrFailedPrecondition)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", g.req.TargetPID)})
	default:
		return invalid("PID namespace mode %s is not supported", opts.GetPid())
	}
	if g.host.CgroupV2 && !g.sc.GetPrivileged() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	g.spec.Linux.Namespaces = ns
	return nil
}

// hasNamespace reports whether the container gets a namespace of type t
// other than the host's.
func (g *gen) hasNamespace(t specs.LinuxNamespaceType) bool {
	for _, n := range g.spec.Linux.Namespaces {
		if n.Type == t {
			return true
		}
	}
	return false
}

var sysctlKey = regexp.MustCompile(`^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$`)

// sysctls applies the pod's sysctls (the infra set them already in the
// namespaces the container joins; runc checks and sets them again). Only
// namespaced sysctls are allowed, and only when the container has its own
// namespace of that kind: net.* need a network namespace, IPC ones an IPC
// namespace.
func (g *gen) sysctls() error {
	if len(g.req.Sandbox.Sysctls) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range g.req.Sandbox.Sysctls {
		if !sysctlKey.MatchString(k) || strings.Contains(k, "..") {
			return invalid("sysctl %q is not a valid name", k)
		}
		switch {
		case strings.HasPrefix(k, "net."):
			if !g.hasNamespace(specs.NetworkNamespace) {
				return invalid("sysctl %q needs the pod's own network namespace (the container uses the host's)", k)
			}
		case k == "kernel.sem" || strings.HasPrefix(k, "kernel.shm") || strings.HasPrefix(k, "kernel.msg") || strings.HasPrefix(k, "fs.mqueue."):
			if !g.hasNamespace(specs.IPCNamespace) {
				return invalid("sysctl %q needs the pod's own IPC namespace (the container uses the host's)", k)
			}
		default:
			return invalid("sysctl %q is not namespaced; it would change the node", k)
		}
		out[k] = v
	}
	g.spec.Linux.Sysctl = out
	return nil
}
