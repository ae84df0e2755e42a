package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

// TestRuntimeHandlers runs pods under two runc handlers that differ in
// their state dir and one crun handler: each container lands in its
// handler's runtime, Status lists every handler, and crun either runs (a
// host it supports) or fails with a message that names the cause.
func TestRuntimeHandlers(t *testing.T) {
	alt := filepath.Join(t.TempDir(), "runc-alt")
	e := newCtrEnvConfig(t, fmt.Sprintf("[runtimes.runc]\npath = \"runc\"\n[runtimes.runc-alt]\npath = \"runc\"\nroot = %q\n[runtimes.crun]\npath = \"crun\"\n", alt))
	busybox := e.image("busybox")

	st, err := e.d.Runtime.Status(ctxT(t), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.RuntimeHandlers {
		names = append(names, h.Name)
	}
	for _, want := range []string{"runc", "runc-alt", "crun"} {
		if !slices.Contains(names, want) {
			t.Errorf("Status runtime handlers %q lack %q", names, want)
		}
	}

	runcList := func(root string) string {
		out, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
		return string(out)
	}
	defaultRoot := filepath.Join(e.d.State, "runc", "runc")
	def := e.pod("on-runc", nil).run(ctrConfig("c", busybox, "sleep", "3600"))
	other := e.podWithHandler("on-alt", "runc-alt", nil).run(ctrConfig("c", busybox, "sleep", "3600"))
	if l := runcList(defaultRoot); !strings.Contains(l, def) || strings.Contains(l, other) {
		t.Errorf("runc --root %s list = %q, want %s only", defaultRoot, l, def)
	}
	if l := runcList(alt); !strings.Contains(l, other) || strings.Contains(l, def) {
		t.Errorf("runc --root %s list = %q, want %s only", alt, l, other)
	}
	if _, info := e.status(other); info.RuntimeHandler != "runc-alt" {
		t.Errorf("verbose runtimeHandler = %q, want runc-alt", info.RuntimeHandler)
	}

	crunPod := e.podWithHandler("on-crun", "crun", nil)
	id, err := crunPod.tryCreate(ctrConfig("c", busybox, "sleep", "3600"))
	if framework.HybridCgroups() {
		if err == nil {
			t.Fatalf("crun created container %s on a hybrid cgroup host", id)
		}
		if msg := err.Error(); !strings.Contains(msg, "crun") || !strings.Contains(msg, "hybrid") {
			t.Errorf("crun's failure does not say why: %v", err)
		}
		if l := runcList(filepath.Join(e.d.State, "runc", "crun")); l != "" {
			t.Errorf("a failed crun create left runtime state: %q", l)
		}
	} else {
		if err != nil {
			t.Fatalf("crun on a host that supports it: %v", err)
		}
		e.start(id)
		e.waitState(id, runtime.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	}
}
