package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOverlayWithManyLayersUsesRelativePaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting needs root")
	}
	// A parent with a long name makes 100 absolute lowerdirs overflow a page.
	parent := filepath.Join(t.TempDir(), strings.Repeat("snapshots-with-a-long-name-", 3))
	const layers = 100
	var lowers []string
	for i := range layers {
		d := filepath.Join(parent, fmt.Sprint(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, fmt.Sprintf("layer%d", i)), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(d, "shared"), []byte(fmt.Sprint(i)), 0o644)
		lowers = append([]string{d}, lowers...) // top first
	}
	if n := len(overlayOptions(lowers, "", "")); n < pageLimit {
		t.Fatalf("test setup: options are only %d bytes", n)
	}
	cwd, _ := os.Getwd()
	target := t.TempDir()
	if err := Overlay(target, lowers, "", "", true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	if now, _ := os.Getwd(); now != cwd {
		t.Fatalf("process cwd changed to %s", now)
	}
	for _, f := range []string{"layer0", "layer99"} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Errorf("%s not visible: %v", f, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(target, "shared")); string(got) != "99" {
		t.Errorf("top layer does not win: shared = %q", got)
	}
}

func TestOverlayRejectsUnsharedParentsWhenTooLong(t *testing.T) {
	var lowers []string
	for i := range 200 {
		lowers = append(lowers, fmt.Sprintf("/tmp/a%d/%s", i, strings.Repeat("x", 30)))
	}
	if _, _, ok := relativeTo(lowers); ok {
		t.Fatal("dirs with different parents reported as sharing one")
	}
	if err := Overlay(t.TempDir(), lowers, "", "", true); err == nil || !strings.Contains(err.Error(), "share no parent") {
		t.Fatalf("err = %v", err)
	}
}
