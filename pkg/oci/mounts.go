package oci

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// defaultMounts are the file systems every container gets, as runc's and
// containerd's defaults (without /run): sysfs and the cgroup file system
// are read-only unless the container is privileged.
func defaultMounts(privileged bool) []specs.Mount {
	mode := "ro"
	if privileged {
		mode = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", mode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", mode}},
	}
}

// mountOptionsAllowed are the CRI mount_options crid passes to the runtime.
var mountOptionsAllowed = []string{
	"nosuid", "suid", "nodev", "dev", "noexec", "exec",
	"noatime", "atime", "relatime", "norelatime", "strictatime", "nostrictatime",
	"nodiratime", "diratime",
}

// mounts assembles the container's mounts: the defaults, /dev/shm, the
// pod's /etc/hosts, /etc/resolv.conf and /etc/hostname (unless a CRI mount
// covers them), then the CRI mounts. A CRI mount replaces a default at the
// same destination, and a CRI mount of /dev drops every default below /dev.
// The result is sorted by depth (stable), so parents are mounted before
// their children.
func (g *gen) mounts() error {
	var cri []specs.Mount
	covered := map[string]bool{}
	for _, m := range g.cfg.GetMounts() {
		sm, err := g.criMount(m)
		if err != nil {
			return err
		}
		cri = append(cri, sm)
		covered[sm.Destination] = true
	}

	// The pod's files, bound like CRI mounts; read-only with a read-only rootfs.
	sb := g.req.Sandbox
	for _, f := range []struct{ dst, src string }{
		{"/etc/hostname", sb.HostnamePath},
		{"/etc/hosts", sb.HostsPath},
		{"/etc/resolv.conf", sb.ResolvConfPath},
	} {
		if f.src == "" || covered[f.dst] {
			continue
		}
		mode := "rw"
		if g.sc.GetReadonlyRootfs() {
			mode = "ro"
		}
		cri = append(cri, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"rbind", "rprivate", mode}})
		covered[f.dst] = true
	}

	// /dev/shm: the host's with the host's IPC namespace, else the pod's,
	// else a private tmpfs.
	if !covered["/dev/shm"] {
		var shm specs.Mount
		switch {
		case !g.hasNamespace(specs.IPCNamespace):
			shm = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "rprivate", "rw"}}
		case sb.ShmPath != "":
			shm = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: sb.ShmPath, Options: []string{"rbind", "rprivate", "rw"}}
		default:
			shm = specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}
		}
		cri = append(cri, shm)
		covered["/dev/shm"] = true
	}

	var all []specs.Mount
	for _, m := range defaultMounts(g.sc.GetPrivileged()) {
		if covered[m.Destination] || (covered["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		all = append(all, m)
	}
	all = append(all, cri...)
	slices.SortStableFunc(all, func(a, b specs.Mount) int { return mountDepth(a.Destination) - mountDepth(b.Destination) })
	g.spec.Mounts = all
	return nil
}

func mountDepth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(path.Clean(p), "/")
}

// criMount turns a CRI mount into a bind mount. Propagation: PRIVATE ->
// rprivate; HOST_TO_CONTAINER -> rslave, and the rootfs becomes rslave
// (unless rshared) so that mounts can reach the container; BIDIRECTIONAL ->
// rshared, and the rootfs becomes rshared. selinux_relabel is ignored: crid
// does not run with SELinux.
func (g *gen) criMount(m *runtime.Mount) (specs.Mount, error) {
	dst, src := m.GetContainerPath(), m.GetHostPath()
	if !path.IsAbs(dst) {
		return specs.Mount{}, invalid("mount container path %q is not absolute", dst)
	}
	dst = path.Clean(dst)
	if dst == "/" {
		return specs.Mount{}, invalid("mount container path %q would cover the root file system", m.GetContainerPath())
	}
	readonly := m.GetReadonly()
	if m.GetImage() != nil {
		if src == "" {
			return specs.Mount{}, fmt.Errorf("image volume mount at %s (image %q) must be resolved to a host path by the caller: %w",
				dst, m.GetImage().GetImage(), errdefs.ErrUnimplemented)
		}
		readonly = true // image volumes are read-only by definition
	}
	if src == "" || !path.IsAbs(src) {
		return specs.Mount{}, invalid("mount host path %q for %s is not absolute", src, dst)
	}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		return specs.Mount{}, invalid("id-mapped mount at %s: user namespaces are not supported by crid", dst)
	}
	opts := []string{"rbind"}
	switch m.GetPropagation() {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		opts = append(opts, "rprivate")
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		opts = append(opts, "rslave")
		if g.spec.Linux.RootfsPropagation != "rshared" {
			g.spec.Linux.RootfsPropagation = "rslave"
		}
		g.res.Propagation = append(g.res.Propagation, PropagationNeed{HostPath: src, Mode: "rslave"})
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		opts = append(opts, "rshared")
		g.spec.Linux.RootfsPropagation = "rshared"
		g.res.Propagation = append(g.res.Propagation, PropagationNeed{HostPath: src, Mode: "rshared"})
	default:
		return specs.Mount{}, invalid("mount %s: propagation %d is unknown", dst, m.GetPropagation())
	}
	switch {
	case m.GetRecursiveReadOnly() && !readonly:
		return specs.Mount{}, invalid("mount %s: recursive_read_only needs readonly", dst)
	case m.GetRecursiveReadOnly() && m.GetPropagation() != runtime.MountPropagation_PROPAGATION_PRIVATE:
		return specs.Mount{}, invalid("mount %s: recursive_read_only needs private propagation, got %s", dst, m.GetPropagation())
	case m.GetRecursiveReadOnly() && !g.host.RecursiveReadOnlyMounts:
		return specs.Mount{}, invalid("mount %s: recursive read-only mounts are not supported by the OCI runtime", dst)
	case m.GetRecursiveReadOnly():
		opts = append(opts, "rro")
	case readonly:
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	for _, o := range m.GetMountOptions() {
		if !slices.Contains(mountOptionsAllowed, o) {
			return specs.Mount{}, invalid("mount %s: mount option %q is not allowed", dst, o)
		}
		if !slices.Contains(opts, o) {
			opts = append(opts, o)
		}
	}
	g.res.HostPaths = append(g.res.HostPaths, src)
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}, nil
}
