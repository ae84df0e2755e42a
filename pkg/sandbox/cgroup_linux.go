package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/sysinfo"
)

const cgroupRoot = "/sys/fs/cgroup"

// hierarchies lists the cgroup directories a process is placed in: every
// v1 controller mount, or the single v2 root.
func hierarchies() []string {
	if sysinfo.CgroupMode() == sysinfo.CgroupUnified {
		return []string{cgroupRoot}
	}
	var out []string
	entries, _ := os.ReadDir(cgroupRoot)
	for _, e := range entries {
		if e.IsDir() && e.Name() != "unified" {
			out = append(out, filepath.Join(cgroupRoot, e.Name()))
		}
	}
	return out
}

// joinCgroup creates path in every hierarchy and moves pid into it. The
// directories it creates (the leaf, and parents kubelet had not made) are
// listed in the JSON file record as they are made, so that removeCgroup,
// also after a crash, deletes those and no others.
func joinCgroup(path string, pid int, record string) error {
	var created []string
	note := func(dir string) error {
		created = append(created, dir)
		js, _ := json.Marshal(created)
		if err := os.WriteFile(record, js, 0o600); err != nil {
			return fmt.Errorf("record cgroup dirs: %w", err)
		}
		return nil
	}
	for _, h := range hierarchies() {
		dir := filepath.Join(h, path)
		if err := mkdirCgroup(h, dir, note); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move infra %d into cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

// mkdirCgroup creates dir and its parents; a new v1 cpuset cgroup gets its
// parent's cpus and mems, without which no process may join it.
func mkdirCgroup(root, dir string, note func(string) error) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != root && len(parent) > len(root) {
		if err := mkdirCgroup(root, parent, note); err != nil {
			return err
		}
	}
	if err := note(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if filepath.Base(root) == "cpuset" {
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if cur, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(cur)) != "" {
				continue
			}
			v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err != nil {
				return fmt.Errorf("read parent %s: %w", f, err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("init %s of %s: %w", f, dir, err)
			}
		}
	}
	return nil
}

// removeCgroup deletes the infra's own cgroup in every hierarchy, and the
// parents crid created for it (listed in record) when nothing else uses
// them; never a parent kubelet made. A process that has just been killed
// may hold its cgroup for a moment, so busy dirs are retried briefly.
func removeCgroup(path, record string) error {
	var dirs []string
	if data, err := os.ReadFile(record); err == nil {
		_ = json.Unmarshal(data, &dirs)
	}
	var errs []error
	if path != "" {
		for _, h := range hierarchies() {
			if err := rmdirCgroup(filepath.Join(h, path), true); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Deepest first; a parent another pod still uses stays: not an error.
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = rmdirCgroup(dirs[i], false)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(record); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func rmdirCgroup(dir string, wait bool) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !wait || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
