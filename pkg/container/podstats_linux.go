package container

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/sysinfo"
)

// PodStats is a pod's resource usage at one moment.
type PodStats struct {
	Timestamp time.Time
	// CPU and memory: the pod's cgroup (its cgroup_parent, which kubelet
	// sets), else the sum over its running containers.
	CPUUsageNanos, MemoryUsage, MemoryWorkingSet, MemoryRSS uint64
	ProcessCount                                            uint64
	// Network: the pod's interfaces (none for host-network pods).
	Interfaces []InterfaceStats
	Containers []*ContainerStats
}

// InterfaceStats are one network interface's counters.
type InterfaceStats struct {
	Name                                 string
	RxBytes, RxErrors, TxBytes, TxErrors uint64
}

// ContainerStats pairs a container with its stats.
type ContainerStats struct {
	Container *store.Container
	Stats     *Stats
}

// PodStats reads a pod's usage; cgroupParent is its CRI cgroup_parent.
func (m *Manager) PodStats(sb *store.Sandbox, cgroupParent string) (*PodStats, error) {
	ps := &PodStats{Timestamp: time.Now()}
	containers, err := m.ofSandbox(sb.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range containers {
		if c.State == store.StateCreating {
			continue
		}
		st, err := m.Stats(c)
		if err != nil {
			return nil, err
		}
		ps.Containers = append(ps.Containers, &ContainerStats{Container: c, Stats: st})
	}
	var pod Stats
	if cgroupParent != "" && readCgroupStats(podCgroupDirs(cgroupParent), &pod) == nil {
		ps.CPUUsageNanos, ps.MemoryUsage, ps.MemoryWorkingSet, ps.MemoryRSS = pod.CPUUsageNanos, pod.MemoryUsage, pod.MemoryWorkingSet, pod.MemoryRSS
	} else {
		for _, c := range ps.Containers {
			ps.CPUUsageNanos += c.Stats.CPUUsageNanos
			ps.MemoryUsage += c.Stats.MemoryUsage
			ps.MemoryWorkingSet += c.Stats.MemoryWorkingSet
			ps.MemoryRSS += c.Stats.MemoryRSS
		}
	}
	for _, c := range ps.Containers {
		if c.Container.State == store.StateRunning {
			ps.ProcessCount += countCgroupProcs(sysinfo.ProcCgroups(c.Container.Pid))
		}
	}
	if sb.NetNSPath != "" && sb.State == store.StateReady {
		if ns, err := netns.Load(sb.NetNSPath); err == nil {
			// /proc/thread-self/net is the calling thread's namespace.
			ns.Do(func() error {
				data, err := os.ReadFile("/proc/thread-self/net/dev")
				if err == nil {
					ps.Interfaces = parseNetDev(data)
				}
				return err
			})
		}
	}
	return ps, nil
}

// podCgroupDirs maps controllers to a pod cgroup's dirs on the host.
func podCgroupDirs(parent string) map[string]string {
	parent = filepath.Clean("/" + parent)
	if sysinfo.CgroupMode() == sysinfo.CgroupUnified {
		return map[string]string{"": filepath.Join("/sys/fs/cgroup", parent)}
	}
	return map[string]string{
		"memory":  filepath.Join("/sys/fs/cgroup/memory", parent),
		"cpuacct": filepath.Join("/sys/fs/cgroup/cpuacct", parent),
	}
}

// countCgroupProcs counts the processes in a container's cgroup.
func countCgroupProcs(dirs map[string]string) uint64 {
	dir, ok := dirs["pids"]
	if !ok {
		if dir, ok = dirs[""]; !ok {
			return 0
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return 0
	}
	return uint64(bytes.Count(data, []byte("\n")))
}

// parseNetDev parses /proc/net/dev, leaving out the loopback.
func parseNetDev(data []byte) []InterfaceStats {
	var out []InterfaceStats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 11 {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		out = append(out, InterfaceStats{Name: name, RxBytes: n(0), RxErrors: n(2), TxBytes: n(8), TxErrors: n(10)})
	}
	return out
}
