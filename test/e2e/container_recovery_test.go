package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

// TestShimKilledContainerIsExited: a shim killed with SIGKILL cannot
// record its container's exit, so crid does: the container's processes
// are killed through the runtime and it turns EXITED with exit code 255
// and a message that says why; it can then be removed without leftovers.
func TestShimKilledContainerIsExited(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("shimkill", nil)
	id := p.run(ctrConfig("c", e.image("busybox"), "sleep", "3600"))
	proc := e.proc(id)
	if err := syscall.Kill(proc.shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := e.waitState(id, runtime.ContainerState_CONTAINER_EXITED, 30*time.Second)
	if st.ExitCode != 255 || !strings.Contains(st.Message, "shim") || st.FinishedAt == 0 {
		t.Errorf("after its shim died: exit %d reason %q message %q finished %d", st.ExitCode, st.Reason, st.Message, st.FinishedAt)
	}
	if !eventually(10*time.Second, func() bool { return !framework.Alive(proc.pid) }) {
		t.Errorf("the container's init %d outlived its shim", proc.pid)
	}
	if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	e.assertNoContainerLeftovers(proc)
}

// TestImageRemovedUnderRunningContainer: removing the image of a running
// container keeps its layers until the container is removed.
func TestImageRemovedUnderRunningContainer(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("imgrm", nil)
	ref := e.image("busybox")
	id := p.run(ctrConfig("c", ref, "sleep", "3600"))
	if _, err := e.d.Image.RemoveImage(ctxT(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	snapshots := filepath.Join(e.d.Root, "snapshots")
	if left := entries(t, snapshots); len(left) == 0 {
		t.Fatal("the layers of a running container's image were deleted with the image")
	}
	// A new process in the container still finds its files.
	resp, err := e.d.Runtime.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/etc/passwd"}, Timeout: 10})
	if err != nil || resp.ExitCode != 0 || !strings.Contains(string(resp.Stdout), "root:") {
		t.Fatalf("exec after the image removal: %v %v %q", err, resp.GetExitCode(), resp.GetStderr())
	}
	if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if left := entries(t, snapshots); len(left) != 0 {
		t.Errorf("layers of the removed image remain after its last container went: %v", left)
	}
}

// TestOrphanedContainerDirsRemovedAtStart: a bundle (with a mounted
// rootfs) and a writable layer that no record knows, as a crash in the
// middle of a removal leaves them, are gone after a restart.
func TestOrphanedContainerDirsRemovedAtStart(t *testing.T) {
	e := newCtrEnv(t)
	e.d.Kill()
	const orphan = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	bundle := filepath.Join(e.d.State, "containers", orphan)
	layer := filepath.Join(e.d.Root, "containers", orphan, "upper")
	for _, d := range []string{filepath.Join(bundle, "rootfs"), layer} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("tmpfs", filepath.Join(bundle, "rootfs"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(bundle, "rootfs"), syscall.MNT_DETACH) })
	e.d.Launch()
	for _, d := range []string{bundle, filepath.Dir(layer)} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("orphan %s survived the restart: %v", d, err)
		}
	}
	if m := framework.MountsBelow(filepath.Join(e.d.State, "containers")); len(m) > 0 {
		t.Errorf("orphan mounts left: %v", m)
	}
}

// TestKillDuringStartContainer: crid is killed while the runtime starts a
// container; the shim finishes the start, and after the restart the
// container is RUNNING with a start time (kubelet must not start it again).
func TestKillDuringStartContainer(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	marker := filepath.Join(bin, "starting")
	wrapper := filepath.Join(bin, "slow-start-runc")
	script := "#!/bin/sh\nfor a; do if [ \"$a\" = start ]; then touch " + marker + "; sleep 1; fi; done\nexec " + runc + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newCtrEnvConfig(t, fmt.Sprintf("[runtimes.runc]\npath = \"runc\"\n[runtimes.slow]\npath = %q\n", wrapper))
	p := e.podWithHandler("slowstart", "slow", nil)
	id := p.create(ctrConfig("c", e.image("busybox"), "sleep", "3600"))
	go e.d.Runtime.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id})
	if !eventually(20*time.Second, func() bool { _, err := os.Stat(marker); return err == nil }) {
		t.Fatalf("StartContainer never reached the runtime's start\n%s", e.d.LogTail(20))
	}
	e.d.Kill()
	time.Sleep(1500 * time.Millisecond) // the runtime's start completes meanwhile
	e.d.Launch()
	st := e.waitState(id, runtime.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	if st.StartedAt == 0 || st.StartedAt < st.CreatedAt {
		t.Errorf("recovered start time %d (created %d)", st.StartedAt, st.CreatedAt)
	}
	if _, err := e.d.Runtime.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.status(id); st.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("after stop: %v", st.State)
	}
}
