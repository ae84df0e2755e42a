package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/mount"
	"github.com/crid-dev/crid/test/framework"
)

// TestHundredLayerImageMounts pulls a 100-layer image and mounts all its
// snapshots as one overlay, as a container rootfs will be.
func TestHundredLayerImageMounts(t *testing.T) {
	srv, host := serve(t)
	base, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	layers := []testimage.Layer{base}
	for i := 1; i < 100; i++ {
		layers = append(layers, testimage.Layer{Entries: []testimage.Entry{
			testimage.Dir("layers", 0o755),
			testimage.File(fmt.Sprintf("layers/%03d", i), "x", 0o644),
			testimage.File("top", fmt.Sprint(i), 0o644),
		}})
	}
	b, err := testimage.Build(testimage.Image{Layers: layers, Config: testimage.BusyboxConfig()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Add("crid-test/deep", "latest", b)
	d := framework.Start(t, framework.Options{})
	ref := host + "/crid-test/deep:latest"
	pull(t, d, ref, nil)
	dirs := verboseInfo(t, imageStatus(t, d, ref)).SnapshotDirs
	if len(dirs) != 100 {
		t.Fatalf("%d snapshot dirs", len(dirs))
	}
	t.Logf("absolute lowerdir list: %d bytes (mount data is limited to a page)", len(strings.Join(dirs, ":")))
	target := t.TempDir()
	if err := mount.Overlay(target, dirs, "", "", true); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	entries, err := os.ReadDir(filepath.Join(target, "layers"))
	if err != nil || len(entries) != 99 {
		t.Fatalf("layers/ has %d entries, %v", len(entries), err)
	}
	if top, _ := os.ReadFile(filepath.Join(target, "top")); string(top) != "99" {
		t.Fatalf("top = %q, want the top layer's 99", top)
	}
	if _, err := os.Stat(filepath.Join(target, "bin/busybox")); err != nil {
		t.Fatalf("bottom layer not visible: %v", err)
	}
}
