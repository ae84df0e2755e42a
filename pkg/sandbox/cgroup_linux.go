package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/sysinfo"
)

const cgroupRoot = "/sys/fs/cgroup"

// CgroupPath returns the infra process's cgroup, relative to a hierarchy
// root: <parent>/crid-<id>. With the systemd driver the parent is a slice
// name, expanded the way systemd nests slices (a-b-c.slice lives in
// a.slice/a-b.slice/).
func CgroupPath(driver, parent, id string) (string, error) {
	if parent == "" {
		return "", nil
	}
	if driver == "systemd" {
		if !strings.HasSuffix(parent, ".slice") || strings.Contains(parent, "/") {
			return "", fmt.Errorf("cgroup parent %q is not a systemd slice (cgroup_driver is systemd): %w", parent, errdefs.ErrInvalidArgument)
		}
		name := strings.TrimSuffix(parent, ".slice")
		if name == "" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
			return "", fmt.Errorf("slice %q is malformed: %w", parent, errdefs.ErrInvalidArgument)
		}
		path, prefix := "", ""
		for _, part := range strings.Split(name, "-") {
			prefix += part
			path += "/" + prefix + ".slice"
			prefix += "-"
		}
		return path + "/crid-" + id + ".scope", nil
	}
	clean := filepath.Clean("/" + parent)
	if clean != "/"+strings.TrimPrefix(parent, "/") && clean+"/" != "/"+strings.TrimPrefix(parent, "/") {
		return "", fmt.Errorf("cgroup parent %q is not a clean path: %w", parent, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(clean, "crid-"+id), nil
}

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

// joinCgroup creates path in every hierarchy and moves pid into it.
func joinCgroup(path string, pid int) error {
	for _, h := range hierarchies() {
		dir := filepath.Join(h, path)
		if err := mkdirCgroup(h, dir); err != nil {
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
func mkdirCgroup(root, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != root && len(parent) > len(root) {
		if err := mkdirCgroup(root, parent); err != nil {
			return err
		}
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

// removeCgroup deletes the infra's own cgroup (never its parent, which
// kubelet owns) once no process is left in it.
func removeCgroup(path string) error {
	if path == "" {
		return nil
	}
	var errs []error
	for _, h := range hierarchies() {
		dir := filepath.Join(h, path)
		// A just-killed process leaves its cgroup a moment after it dies.
		err := os.Remove(dir)
		for i := 0; errors.Is(err, unix.EBUSY) && i < 200; i++ {
			time.Sleep(10 * time.Millisecond)
			err = os.Remove(dir)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}
