package oci

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestDevicesFromPath(t *testing.T) {
	devs, err := DevicesFromPath("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/dev/null" || devs[0].Type != "c" || devs[0].Major != 1 || devs[0].Minor != 3 ||
		devs[0].FileMode == nil || *devs[0].FileMode != 0o666 {
		t.Fatalf("/dev/null = %+v", devs)
	}
	if _, err := DevicesFromPath("/etc/hostname"); err == nil {
		t.Fatal("a regular file is not a device")
	}
	if _, err := DevicesFromPath("/dev/does-not-exist"); !os.IsNotExist(err) {
		t.Fatalf("missing device: %v", err)
	}
}

func TestHostDevices(t *testing.T) {
	devs, err := HostDevices()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range devs {
		paths = append(paths, d.Path)
		if strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/console" {
			t.Errorf("%s must be skipped", d.Path)
		}
	}
	for _, want := range []string{"/dev/null", "/dev/zero", "/dev/urandom"} {
		if !slices.Contains(paths, want) {
			t.Errorf("%s missing from %v", want, paths)
		}
	}
}

func TestDetectHost(t *testing.T) {
	h, err := DetectHost("cgroupfs")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.CapabilityBoundingSet) == 0 || h.NofileHardLimit == 0 || h.CgroupDriver != "cgroupfs" {
		t.Fatalf("host = %+v", h)
	}
	if !slices.Contains(h.CapabilityBoundingSet, "CAP_SYS_RESOURCE") && h.HasCapSysResource {
		t.Fatalf("CAP_SYS_RESOURCE effective but not in the bounding set: %+v", h)
	}
}
