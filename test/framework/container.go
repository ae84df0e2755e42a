package framework

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ShimProcesses lists the pids of live crid-shim processes whose command
// line names one of ids (crid-shim ... --id ID ...).
func ShimProcesses(ids ...string) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if filepath.Base(args[0]) != "crid-shim" || !containsArg(args, "--id") {
			continue
		}
		for _, id := range ids {
			if id != "" && strings.Contains(string(data), id) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if Alive(pid) {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a || strings.HasPrefix(x, a+"=") {
			return true
		}
	}
	return false
}

// Alive reports whether pid is a process that has not exited (zombies count
// as exited).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// CgroupDirs maps each cgroup v1 controller of pid ("memory", "cpu",
// "pids", ...) and "unified" (v2) to its directory under /sys/fs/cgroup.
func CgroupDirs(pid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dirs := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
				dirs["unified"] = filepath.Join("/sys/fs/cgroup/unified", parts[2])
			} else {
				dirs["unified"] = filepath.Join("/sys/fs/cgroup", parts[2])
			}
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			mnt := filepath.Join("/sys/fs/cgroup", ctl)
			if _, err := os.Stat(mnt); err != nil {
				mnt = filepath.Join("/sys/fs/cgroup", parts[1]) // e.g. cpu,cpuacct
			}
			dirs[ctl] = filepath.Join(mnt, parts[2])
		}
	}
	return dirs, sc.Err()
}

// ReadCgroupInt reads an integer cgroup file (e.g. memory.limit_in_bytes).
func ReadCgroupInt(dir, file string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// MountsBelow lists the mount points at or below any of dirs, from this
// process's mount table.
func MountsBelow(dirs ...string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		for _, d := range dirs {
			if f[4] == d || strings.HasPrefix(f[4], d+"/") {
				out = append(out, f[4])
				break
			}
		}
	}
	return out
}
