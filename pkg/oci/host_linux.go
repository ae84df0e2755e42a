package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/sysinfo"
)

// DetectHost describes this host and crid's own privileges. HostDevices is
// left empty (fill it with HostDevices when privileged containers are
// allowed); cgroupDriver is "cgroupfs" or "systemd".
func DetectHost(cgroupDriver string) (*Host, error) {
	h := &Host{CgroupDriver: cgroupDriver}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(status)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapBnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("parse CapBnd: %w", err)
			}
			h.CapabilityBoundingSet = CapabilitiesFromMask(mask)
		}
	}
	h.HasCapSysResource = sysinfo.HasCapSysResource()
	if data, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		h.CurrentOOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil {
		h.NofileHardLimit = rl.Max
	}
	switch sysinfo.CgroupMode() {
	case sysinfo.CgroupUnified:
		h.CgroupV2 = true
		m, _ := filepath.Glob("/sys/fs/cgroup/*/memory.swap.max")
		h.SwapAccounting = len(m) > 0
		h.Hugetlb = controllerEnabled("hugetlb")
	default:
		h.SwapAccounting = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		h.Hugetlb = exists("/sys/fs/cgroup/hugetlb")
	}
	if data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil {
		h.AppArmorEnabled = strings.TrimSpace(string(data)) == "Y"
	}
	h.Hostname, _ = os.Hostname()
	return h, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func controllerEnabled(c string) bool {
	data, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(data)) {
		if f == c {
			return true
		}
	}
	return false
}

// errNotDevice marks a path that is not a device node.
var errNotDevice = errors.New("not a device node")

// deviceAt describes the device node at p (following symlinks when follow).
func deviceAt(p string, follow bool) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	var err error
	if follow {
		err = unix.Stat(p, &st)
	} else {
		err = unix.Lstat(p, &st)
	}
	if err != nil {
		return specs.LinuxDevice{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s: %w", p, errNotDevice)
	}
	mode := fs.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     p,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))), //nolint:unconvert // Rdev's type differs by arch
		Minor:    int64(unix.Minor(uint64(st.Rdev))), //nolint:unconvert
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}

// DevicesFromPath returns the device node at hostPath (symlinks followed,
// the path kept as given), or every device node below it when it is a
// directory (as containerd does for CRI devices).
func DevicesFromPath(hostPath string) ([]specs.LinuxDevice, error) {
	st, err := os.Stat(hostPath)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		d, err := deviceAt(hostPath, true)
		if err != nil {
			return nil, err
		}
		return []specs.LinuxDevice{d}, nil
	}
	return devicesBelow(hostPath)
}

// HostDevices returns the host's device nodes under /dev, as runc and
// containerd give them to privileged containers: symlinks, /dev/console and
// the pts, shm, fd and mqueue directories are skipped.
func HostDevices() ([]specs.LinuxDevice, error) { return devicesBelow("/dev") }

func devicesBelow(root string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // a node that vanished or cannot be read
		}
		if e.IsDir() {
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				if p != root {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if e.Name() == "console" || e.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		d, err := deviceAt(p, false)
		if errors.Is(err, errNotDevice) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
