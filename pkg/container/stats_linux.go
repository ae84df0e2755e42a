package container

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/sysinfo"
)

// Stats is a container's resource usage at one moment.
type Stats struct {
	Timestamp time.Time
	// CPU and memory come from its cgroup while it runs (zero otherwise).
	HasCgroup        bool
	CPUUsageNanos    uint64
	MemoryUsage      uint64
	MemoryWorkingSet uint64 // usage less inactive file pages, as kubelet counts it
	MemoryRSS        uint64
	PageFaults       uint64
	MajorPageFaults  uint64
	// The writable layer (overlay upper dir).
	LayerBytes, LayerInodes uint64
	LayerMountpoint         string
}

// Stats reads a container's cgroup counters and measures its writable layer.
func (m *Manager) Stats(c *store.Container) (*Stats, error) {
	st := &Stats{Timestamp: time.Now(), LayerMountpoint: filepath.Join(m.o.Root, "containers")}
	if c.State == store.StateRunning || c.State == store.StateCreated {
		if paths := sysinfo.ProcCgroups(c.Pid); c.Pid > 0 && len(paths) > 0 {
			st.HasCgroup = readCgroupStats(paths, st) == nil
		}
	}
	bytes, inodes, err := diskUsage(filepath.Join(m.layerDir(c.ID), "upper"))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("container %s writable layer usage: %w", c.ID, err)
	}
	st.LayerBytes, st.LayerInodes = bytes, inodes
	return st, nil
}

// readCgroupStats fills CPU and memory from cgroup v1 controllers when
// present, else from the unified (v2) hierarchy.
func readCgroupStats(paths map[string]string, st *Stats) error {
	if mem, ok := paths["memory"]; ok {
		ms := sysinfo.KeyValues(filepath.Join(mem, "memory.stat"))
		st.MemoryUsage = readUint(filepath.Join(mem, "memory.usage_in_bytes"))
		st.MemoryRSS = ms["total_rss"]
		st.PageFaults, st.MajorPageFaults = ms["total_pgfault"], ms["total_pgmajfault"]
		st.MemoryWorkingSet = sub(st.MemoryUsage, ms["total_inactive_file"])
		if cpu, ok := paths["cpuacct"]; ok {
			st.CPUUsageNanos = readUint(filepath.Join(cpu, "cpuacct.usage"))
		}
		return nil
	}
	dir, ok := paths[""]
	if !ok {
		return fmt.Errorf("no cgroup")
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	ms := sysinfo.KeyValues(filepath.Join(dir, "memory.stat"))
	st.MemoryUsage = readUint(filepath.Join(dir, "memory.current"))
	st.MemoryRSS = ms["anon"]
	st.PageFaults, st.MajorPageFaults = ms["pgfault"], ms["pgmajfault"]
	st.MemoryWorkingSet = sub(st.MemoryUsage, ms["inactive_file"])
	st.CPUUsageNanos = sysinfo.KeyValues(filepath.Join(dir, "cpu.stat"))["usage_usec"] * 1000
	return nil
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func readUint(path string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// diskUsage sums the blocks and counts the inodes under dir (hard links
// once), without following symlinks.
func diskUsage(dir string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p != dir {
				return nil // removed while walking
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			if sys.Nlink > 1 && !info.IsDir() {
				if seen[sys.Ino] {
					return nil
				}
				seen[sys.Ino] = true
			}
			bytes += uint64(sys.Blocks) * 512
		}
		inodes++
		return nil
	})
	return bytes, inodes, err
}
