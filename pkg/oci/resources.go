package oci

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

var (
	cpusetRe   = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)
	pageSizeRe = regexp.MustCompile(`^[0-9]+(KB|MB|GB|TB|PB)$`)
)

// resources maps LinuxContainerResources. Zero values mean "not set", as
// kubelet sends them. Memory swap equals the memory limit (no swap) unless
// memory_swap_limit_in_bytes says otherwise, when the host can limit swap.
// Hugepage limits need the hugetlb controller and cgroup v2 keys need cgroup
// v2; without them they are dropped with a warning (kubelet sends neither to
// such hosts). oom_score_adj cannot go below crid's own without
// CAP_SYS_RESOURCE (containerd's restrict_oom_score_adj), so it is raised to
// it.
func (g *gen) resources() error {
	r := g.cfg.GetLinux().GetResources()
	if r == nil {
		return nil
	}
	res := g.spec.Linux.Resources
	cpu := &specs.LinuxCPU{}
	if p := r.GetCpuPeriod(); p < 0 {
		return invalid("cpu_period %d is negative", p)
	} else if p > 0 {
		v := uint64(p)
		cpu.Period = &v
	}
	if q := r.GetCpuQuota(); q != 0 {
		cpu.Quota = &q
	}
	if s := r.GetCpuShares(); s < 0 {
		return invalid("cpu_shares %d is negative", s)
	} else if s > 0 {
		v := uint64(s)
		cpu.Shares = &v
	}
	for _, c := range []struct{ name, v string }{{"cpuset_cpus", r.GetCpusetCpus()}, {"cpuset_mems", r.GetCpusetMems()}} {
		if c.v != "" && !cpusetRe.MatchString(c.v) {
			return invalid("%s %q is not a cpu list", c.name, c.v)
		}
	}
	cpu.Cpus, cpu.Mems = r.GetCpusetCpus(), r.GetCpusetMems()
	if *cpu != (specs.LinuxCPU{}) {
		res.CPU = cpu
	}

	mem := &specs.LinuxMemory{}
	limit, swap := r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes()
	if limit < 0 {
		return invalid("memory_limit_in_bytes %d is negative", limit)
	}
	if swap < -1 {
		return invalid("memory_swap_limit_in_bytes %d is not -1 (unlimited) or a size", swap)
	}
	if limit > 0 {
		mem.Limit = &limit
	}
	if swap == 0 && limit > 0 {
		swap = limit
	}
	if swap != 0 {
		if g.host.SwapAccounting {
			mem.Swap = &swap
		} else if r.GetMemorySwapLimitInBytes() != 0 {
			g.warnf("memory swap limit %d ignored: the host cannot limit swap", r.GetMemorySwapLimitInBytes())
		}
	}
	if mem.Limit != nil || mem.Swap != nil {
		res.Memory = mem
	}

	for _, h := range r.GetHugepageLimits() {
		if !pageSizeRe.MatchString(h.GetPageSize()) {
			return invalid("hugepage size %q is not valid (e.g. 2MB)", h.GetPageSize())
		}
		if !g.host.Hugetlb {
			g.warnf("hugepage limit %s=%d ignored: the hugetlb controller is not available", h.GetPageSize(), h.GetLimit())
			continue
		}
		res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}

	if u := r.GetUnified(); len(u) > 0 {
		if g.host.CgroupV2 {
			res.Unified = maps.Clone(u)
		} else {
			g.warnf("cgroup v2 settings %v ignored: the host uses cgroup v1", u)
		}
	}

	adj := int(r.GetOomScoreAdj())
	if adj < -1000 || adj > 1000 {
		return invalid("oom_score_adj %d is outside [-1000, 1000]", adj)
	}
	if !g.host.HasCapSysResource && adj < g.host.CurrentOOMScoreAdj {
		g.warnf("oom_score_adj %d raised to crid's own %d (no CAP_SYS_RESOURCE)", adj, g.host.CurrentOOMScoreAdj)
		adj = g.host.CurrentOOMScoreAdj
	}
	g.spec.Process.OOMScoreAdj = &adj
	return nil
}

// devices maps CRI devices: each host path (a device node, or a directory
// of them) appears at the container path, with a device cgroup rule
// granting the requested permissions ("rwm" by default). The cgroup starts
// from deny-all (the runtime adds its usual /dev/null, /dev/zero, ... rules).
// A privileged container also gets every host device and an allow-all rule.
func (g *gen) devices() error {
	lookup := g.host.LookupDevice
	if lookup == nil {
		lookup = DevicesFromPath
	}
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	var devs []specs.LinuxDevice
	seen := map[string]bool{}
	for _, d := range g.cfg.GetDevices() {
		hp, cp, perms := d.GetHostPath(), d.GetContainerPath(), d.GetPermissions()
		if cp == "" {
			cp = hp
		}
		if !path.IsAbs(hp) || !path.IsAbs(cp) {
			return invalid("device %q -> %q: paths must be absolute", hp, cp)
		}
		hp, cp = path.Clean(hp), path.Clean(cp)
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" || len(perms) > 3 {
			return invalid("device %s: permissions %q are not a combination of r, w and m", hp, perms)
		}
		nodes, err := lookup(hp)
		if err != nil {
			return fmt.Errorf("device %s: %w: %w", hp, err, errdefs.ErrInvalidArgument)
		}
		for _, n := range nodes {
			dev := n
			if n.Path != hp {
				dev.Path = path.Join(cp, strings.TrimPrefix(n.Path, hp+"/"))
			} else {
				dev.Path = cp
			}
			if seen[dev.Path] {
				continue
			}
			seen[dev.Path] = true
			devs = append(devs, dev)
			if n.Type == "c" || n.Type == "b" {
				major, minor := n.Major, n.Minor
				rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: n.Type, Major: &major, Minor: &minor, Access: perms})
			}
		}
	}
	if g.sc.GetPrivileged() {
		for _, d := range g.host.HostDevices {
			if !seen[d.Path] {
				seen[d.Path] = true
				devs = append(devs, d)
			}
		}
		rules = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	g.spec.Linux.Devices = devs
	g.spec.Linux.Resources.Devices = rules
	return nil
}

// UpdateResources maps the resources of an UpdateContainerResources call
// with the same rules as Generate; runc update takes the result (the
// oom_score_adj of a running container is not changed by an update).
func UpdateResources(host *Host, r *runtime.LinuxContainerResources) (*specs.LinuxResources, []string, error) {
	if host == nil {
		host = &Host{}
	}
	g := &gen{
		host: host,
		cfg:  &runtime.ContainerConfig{Linux: &runtime.LinuxContainerConfig{Resources: r}},
		spec: &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Resources: &specs.LinuxResources{}}},
		res:  &Result{},
	}
	if err := g.resources(); err != nil {
		return nil, nil, err
	}
	return g.spec.Linux.Resources, g.res.Warnings, nil
}
