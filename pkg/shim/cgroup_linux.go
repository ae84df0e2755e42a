package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procCgroups reads a process's memory cgroup: "memory" on cgroup v1,
// "" for the unified hierarchy.
func procCgroups(pid int) map[string]string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" || (c == "" && parts[0] == "0") {
				out[c] = parts[2]
			}
		}
	}
	return out
}

// oomKilled tells whether the kernel's OOM killer killed a process of the
// container's memory cgroup: v1 memory.oom_control's oom_kill, v2
// memory.events' oom_kill.
func oomKilled(cgroups map[string]string) bool {
	if p, ok := cgroups["memory"]; ok {
		if n := counter(filepath.Join("/sys/fs/cgroup/memory", p, "memory.oom_control"), "oom_kill"); n > 0 {
			return true
		}
	}
	if p, ok := cgroups[""]; ok {
		if n := counter(filepath.Join("/sys/fs/cgroup", p, "memory.events"), "oom_kill"); n > 0 {
			return true
		}
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
