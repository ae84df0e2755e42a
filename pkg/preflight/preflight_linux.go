package preflight

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/sysinfo"
)

// checkOverlay mounts a throwaway overlay under root, on the filesystem
// crid's snapshots will live on.
func checkOverlay(root string) Finding {
	f := Finding{Name: "overlay"}
	if err := os.MkdirAll(root, 0o711); err != nil {
		f.Detail = fmt.Sprintf("create %s: %v", root, err)
		return f
	}
	dir, err := os.MkdirTemp(root, ".check-overlay-")
	if err != nil {
		f.Detail = fmt.Sprintf("temp dir under %s: %v", root, err)
		return f
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			f.Detail = err.Error()
			return f
		}
	}
	opts := fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir)
	merged := filepath.Join(dir, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		f.Detail = fmt.Sprintf("overlay mount under %s failed: %v", root, err)
		f.Hint = "modprobe overlay; put root on ext4 or xfs (not on overlay or tmpfs without support)"
		return f
	}
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
		f.Detail = fmt.Sprintf("unmount test overlay: %v", err)
		return f
	}
	f.OK, f.Detail = true, "overlay mounts under "+root
	return f
}

func checkCgroups(driver string) Finding {
	f := Finding{Name: "cgroups"}
	mode := sysinfo.CgroupMode()
	f.Detail = fmt.Sprintf("%s, driver %s", mode, driver)
	if mode == sysinfo.CgroupNone {
		f.Hint = "mount cgroups at /sys/fs/cgroup"
		return f
	}
	if driver == "systemd" {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			f.Detail += ": systemd is not running"
			f.Hint = `set cgroup_driver = "cgroupfs" (and kubelet's cgroupDriver to match)`
			return f
		}
	}
	f.OK = true
	return f
}

func checkCapSysResource() Finding {
	f := Finding{Name: "CAP_SYS_RESOURCE", OK: true}
	if sysinfo.HasCapSysResource() {
		f.Detail = "present"
	} else {
		f.Detail = "absent: oom_score_adj and rlimits are clamped to crid's own"
	}
	return f
}
