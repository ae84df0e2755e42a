// Package sysinfo answers questions about the host that several packages
// need: cgroup layout and crid's own capabilities.
package sysinfo

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroup layouts.
const (
	CgroupNone    = "none"
	CgroupV1      = "cgroup v1"
	CgroupHybrid  = "cgroup v1 (hybrid, with unified hierarchy)"
	CgroupUnified = "cgroup v2"
)

// CgroupMode reports how cgroups are mounted at /sys/fs/cgroup.
func CgroupMode() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return CgroupNone
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return CgroupUnified
	}
	if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return CgroupHybrid
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return CgroupV1
	}
	return CgroupNone
}

// CapEff returns the effective capability set of this process.
func CapEff() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 0
}

// HasCapSysResource reports whether crid may lower oom_score_adj and raise
// hard rlimits; without it those values must be clamped.
func HasCapSysResource() bool { return CapEff()&(1<<unix.CAP_SYS_RESOURCE) != 0 }

// ProcCgroups maps each cgroup controller of a process to its directory
// on the host: v1 controllers to /sys/fs/cgroup/<controller>/<path>, and ""
// to the unified (v2) hierarchy's directory (/sys/fs/cgroup/unified on a
// hybrid host). Nil if the process is gone.
func ProcCgroups(pid int) map[string]string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	unified := "/sys/fs/cgroup"
	if CgroupMode() == CgroupHybrid {
		unified = "/sys/fs/cgroup/unified"
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			out[""] = filepath.Join(unified, parts[2])
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "" && !strings.HasPrefix(c, "name=") {
				out[c] = filepath.Join("/sys/fs/cgroup", c, parts[2])
			}
		}
	}
	return out
}

// KeyValues parses a cgroup file of "key value" lines (memory.stat,
// cpu.stat, memory.events, memory.oom_control); a missing file is empty.
func KeyValues(path string) map[string]uint64 {
	out := map[string]uint64{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				out[f[0]] = n
			}
		}
	}
	return out
}

// RuntimeHostProblem names what keeps the OCI runtime at path from running
// containers on this host, or is "": crun (1.8) refuses hybrid cgroup hosts.
func RuntimeHostProblem(path string) string {
	if strings.Contains(filepath.Base(path), "crun") && CgroupMode() == CgroupHybrid {
		return "crun cannot run containers on this host's hybrid cgroup layout (cgroup v1 controllers with a cgroup v2 hierarchy at /sys/fs/cgroup/unified)"
	}
	return ""
}
