package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// pinNamespaces bind-mounts the infra's namespaces of the given kinds
// ("ipc", "uts") on dir/ns/<kind>, so containers can join them by path and
// they outlive the infra. Its PID namespace is not pinned: nothing can
// enter a PID namespace whose init has died.
func pinNamespaces(dir string, pid int, kinds []string) error {
	nsDir := filepath.Join(dir, "ns")
	if err := os.MkdirAll(nsDir, 0o700); err != nil {
		return err
	}
	for _, ns := range kinds {
		pin := filepath.Join(nsDir, ns)
		if err := os.WriteFile(pin, nil, 0o600); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), pin, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace: %w", ns, err)
		}
	}
	return nil
}

// mountShm mounts the pod's /dev/shm tmpfs at path.
func mountShm(path string, size int64) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount pod shm at %s: %w", path, err)
	}
	return nil
}

// unmountAll detaches every mount at or below dir, deepest first.
func unmountAll(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}
