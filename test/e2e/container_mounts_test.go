package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

// TestContainerHostPathMounts: read-only and read-write bind mounts of a
// host directory and a host file, seen from inside, and listed in
// ContainerStatus.
func TestContainerHostPathMounts(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("mounts", nil)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "app.conf")
	if err := os.WriteFile(conf, []byte("key=value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ctrConfig("binds", e.image("busybox"), sh(`cat /ro/f; touch /ro/x 2>&1; echo ro=$?
echo written > /rw/new; echo rw=$?
cat /etc/app.conf; echo more >> /etc/app.conf 2>&1; echo conf=$?`)...)
	cfg.Mounts = []*runtime.Mount{
		{ContainerPath: "/ro", HostPath: src, Readonly: true},
		{ContainerPath: "/rw", HostPath: src},
		{ContainerPath: "/etc/app.conf", HostPath: conf, Readonly: true},
	}
	id := p.create(cfg)
	e.start(id)
	e.waitExited(id)
	out := logText(readCRILog(t, p.logPath(cfg)), "")
	for _, want := range []string{"from-host\n", "ro=1\n", "Read-only file system", "rw=0\n", "key=value\n", "conf=1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(src, "new")); string(got) != "written\n" {
		t.Errorf("write through the rw mount: host file holds %q", got)
	}
	if _, err := os.Stat(filepath.Join(src, "x")); err == nil {
		t.Errorf("write through the read-only mount reached the host")
	}
	st, _ := e.status(id)
	for _, want := range cfg.Mounts {
		m := findMount(st.Mounts, want.ContainerPath)
		if m == nil {
			t.Errorf("ContainerStatus.mounts lacks %s; has %v", want.ContainerPath, st.Mounts)
		} else if m.HostPath != want.HostPath || m.Readonly != want.Readonly || m.Propagation != want.Propagation {
			t.Errorf("status mount %v, want %v", m, want)
		}
	}
}

// sharedDir returns a fresh directory that is a shared mount point, so
// host-to-container and bidirectional propagation can work from it.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { framework.UnmountUnder(dir) })
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestContainerMountPropagation: with HOST_TO_CONTAINER (rslave) a mount the
// host makes under the source after the container started shows up inside;
// with PRIVATE it does not; with BIDIRECTIONAL (rshared, privileged) a mount
// made inside shows up on the host.
func TestContainerMountPropagation(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("prop", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.Privileged = true
	})
	busybox := e.image("busybox")
	// The container waits for the host's go-ahead (a plain file), then
	// looks for the file on the tmpfs the host mounted before it.
	waiter := `while [ ! -e /prop/go ]; do sleep 0.05; done
[ -e /prop/sub/marker ] && echo seen || echo unseen`
	for _, tc := range []struct {
		name string
		mode runtime.MountPropagation
		want string
	}{
		{"rslave", runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, "seen\n"},
		{"private", runtime.MountPropagation_PROPAGATION_PRIVATE, "unseen\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := p.in(t)
			src := sharedDir(t)
			os.Mkdir(filepath.Join(src, "sub"), 0o755)
			cfg := ctrConfig(tc.name, busybox, sh(waiter)...)
			cfg.Mounts = []*runtime.Mount{{ContainerPath: "/prop", HostPath: src, Propagation: tc.mode}}
			id := p.run(cfg)
			if err := unix.Mount("tmpfs", filepath.Join(src, "sub"), "tmpfs", 0, "size=1m"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "sub", "marker"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			st := p.e.waitExited(id)
			if out := logText(readCRILog(t, p.logPath(cfg)), ""); out != tc.want || st.ExitCode != 0 {
				t.Fatalf("container says %q (exit %d), want %q", out, st.ExitCode, tc.want)
			}
			if m := findMount(st.Mounts, "/prop"); m == nil || m.Propagation != tc.mode {
				t.Errorf("status mounts %v, want /prop with propagation %v", st.Mounts, tc.mode)
			}
		})
	}

	t.Run("rshared", func(t *testing.T) {
		p := p.in(t)
		src := sharedDir(t)
		os.Mkdir(filepath.Join(src, "inner"), 0o755)
		cfg := ctrConfig("rshared", busybox, sh("mount -t tmpfs none /prop/inner && touch /prop/inner/from-container && echo mounted; sleep 3600")...)
		cfg.Mounts = []*runtime.Mount{{ContainerPath: "/prop", HostPath: src, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
		secCtx(cfg).Privileged = true
		p.run(cfg)
		waitLog(t, p.logPath(cfg), "mounted\n")
		if !eventually(5*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(src, "inner", "from-container"))
			return err == nil
		}) {
			t.Fatalf("the container's mount under %s did not reach the host", src)
		}
	})
}

func findMount(mounts []*runtime.Mount, containerPath string) *runtime.Mount {
	for _, m := range mounts {
		if m.ContainerPath == containerPath {
			return m
		}
	}
	return nil
}
