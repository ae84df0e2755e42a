package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crid-dev/crid/test/framework"
)

func TestCheckReportsMissingRuntimeWithHint(t *testing.T) {
	framework.RequireRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("root = \""+filepath.Join(dir, "root")+"\"\n[runtimes.runc]\npath = \"/nonexistent/runc\"\n"), 0o644)
	out, err := exec.Command(framework.Binary(t), "check", "--config", cfg).CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("check with a missing runtime: err=%v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "FAIL runtime runc") || !strings.Contains(text, "hint:") {
		t.Fatalf("no FAIL line with hint for the runtime:\n%s", text)
	}
	for _, item := range []string{"overlay", "cgroups", "cni config", "ipv4 forwarding"} {
		if !strings.Contains(text, item) {
			t.Errorf("check output lacks %q:\n%s", item, text)
		}
	}
	// overlay works on this machine's root filesystem.
	if !strings.Contains(text, "OK   overlay") {
		t.Errorf("overlay check failed on a host that supports it:\n%s", text)
	}
}

func TestCheckFindsRealRuntime(t *testing.T) {
	framework.RequireRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("root = \""+filepath.Join(dir, "root")+"\"\n"), 0o644)
	out, _ := exec.Command(framework.Binary(t), "check", "--config", cfg).CombinedOutput()
	if !strings.Contains(string(out), "OK   runtime runc") || !strings.Contains(string(out), "runc version") {
		t.Fatalf("runc not found by check:\n%s", out)
	}
}

// TestCheckRuntimesAndShim: check names crid-shim next to crid, and says
// why crun cannot work on a hybrid cgroup host (and passes it elsewhere).
func TestCheckRuntimesAndShim(t *testing.T) {
	framework.RequireRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("root = \""+filepath.Join(dir, "root")+"\"\n[runtimes.runc]\npath = \"runc\"\n[runtimes.crun]\npath = \"crun\"\n"), 0o644)
	out, _ := exec.Command(framework.Binary(t), "check", "--config", cfg).CombinedOutput()
	text := string(out)
	if want := "OK   shim                   " + filepath.Join(filepath.Dir(framework.Binary(t)), "crid-shim"); !strings.Contains(text, want) {
		t.Errorf("check does not find crid-shim next to crid (%q):\n%s", want, text)
	}
	if framework.HybridCgroups() {
		if !strings.Contains(text, "FAIL runtime crun") || !strings.Contains(text, "hybrid cgroup") {
			t.Errorf("check passes crun on a hybrid cgroup host:\n%s", text)
		}
	} else if !strings.Contains(text, "OK   runtime crun") {
		t.Errorf("check fails crun on a host that supports it:\n%s", text)
	}
}
