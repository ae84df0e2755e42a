package shim

import (
	"path/filepath"

	"github.com/crid-dev/crid/pkg/sysinfo"
)

// oomKilled tells whether the kernel's OOM killer killed a process of the
// container's memory cgroup (dirs from sysinfo.ProcCgroups): v1
// memory.oom_control's oom_kill, v2 memory.events' oom_kill.
func oomKilled(cgroups map[string]string) bool {
	if dir, ok := cgroups["memory"]; ok && sysinfo.KeyValues(filepath.Join(dir, "memory.oom_control"))["oom_kill"] > 0 {
		return true
	}
	if dir, ok := cgroups[""]; ok && sysinfo.KeyValues(filepath.Join(dir, "memory.events"))["oom_kill"] > 0 {
		return true
	}
	return false
}
