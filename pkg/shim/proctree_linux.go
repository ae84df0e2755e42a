package shim

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// killTree SIGKILLs pid and every process descended from it. The tree is
// read first and then killed, so that children killed parents leave behind
// (re-parented, their ancestry lost) are still found.
func killTree(pid int) {
	for _, p := range descendants(pid) {
		unix.Kill(p, unix.SIGKILL)
	}
	unix.Kill(pid, unix.SIGKILL)
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// parentOf reads a process's parent pid from /proc/<pid>/stat.
func parentOf(pid int) (int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStatPPid(data)
}

// parseStatPPid takes the ppid from a stat line: "pid (comm) state ppid
// ...", where comm may hold spaces and parentheses.
func parseStatPPid(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(string(f[1]))
	return pp, err == nil
}
