package shim

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomKilled tells whether the kernel's OOM killer killed a process of the
// container's memory cgroup (dirs from sysinfo.ProcCgroups): v1
// memory.oom_control's oom_kill, v2 memory.events' oom_kill.
func oomKilled(cgroups map[string]string) bool {
	if dir, ok := cgroups["memory"]; ok && counter(filepath.Join(dir, "memory.oom_control"), "oom_kill") > 0 {
		return true
	}
	if dir, ok := cgroups[""]; ok && counter(filepath.Join(dir, "memory.events"), "oom_kill") > 0 {
		return true
	}
	return false
}

func counter(path, key string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
