package oci

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func findMount(ms []specs.Mount, dst string) *specs.Mount {
	for i := range ms {
		if ms[i].Destination == dst {
			return &ms[i]
		}
	}
	return nil
}

func TestDefaultMounts(t *testing.T) {
	cases := []struct {
		name       string
		privileged bool
		sysMode    string
	}{
		{"unprivileged: sysfs and cgroup read-only", false, "ro"},
		{"privileged: sysfs and cgroup read-write", true, "rw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Sandbox.Privileged = true
			sc(r).Privileged = tc.privileged
			res := mustGenerate(t, testHost(), r)
			for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/dev/shm", "/sys", "/sys/fs/cgroup",
				"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
				if findMount(res.Spec.Mounts, dst) == nil {
					t.Errorf("no mount at %s", dst)
				}
			}
			if findMount(res.Spec.Mounts, "/run") != nil {
				t.Errorf("/run must not be a tmpfs (containerd's CRI drops it)")
			}
			for _, dst := range []string{"/sys", "/sys/fs/cgroup"} {
				if m := findMount(res.Spec.Mounts, dst); !slices.Contains(m.Options, tc.sysMode) {
					t.Errorf("%s options %v lack %s", dst, m.Options, tc.sysMode)
				}
			}
		})
	}
}

func TestShmMount(t *testing.T) {
	cases := []struct {
		name     string
		ipc      runtime.NamespaceMode
		shmPath  string
		wantType string
		wantSrc  string
	}{
		{"pod shm bound", runtime.NamespaceMode_POD, "/run/crid/sandboxes/sb1/shm", "bind", "/run/crid/sandboxes/sb1/shm"},
		{"no pod shm: private tmpfs", runtime.NamespaceMode_POD, "", "tmpfs", "shm"},
		{"host IPC: host /dev/shm", runtime.NamespaceMode_NODE, "/run/crid/sandboxes/sb1/shm", "bind", "/dev/shm"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			sc(r).NamespaceOptions.Ipc = tc.ipc
			r.Sandbox.ShmPath = tc.shmPath
			res := mustGenerate(t, testHost(), r)
			m := findMount(res.Spec.Mounts, "/dev/shm")
			if m == nil || m.Type != tc.wantType || m.Source != tc.wantSrc {
				t.Fatalf("/dev/shm = %+v, want %s from %s", m, tc.wantType, tc.wantSrc)
			}
		})
	}
}

func TestSandboxFileMounts(t *testing.T) {
	t.Run("read-write, read-only with a read-only rootfs", func(t *testing.T) {
		for _, ro := range []bool{false, true} {
			r := testRequest()
			sc(r).ReadonlyRootfs = ro
			res := mustGenerate(t, testHost(), r)
			want := "rw"
			if ro {
				want = "ro"
			}
			for dst, src := range map[string]string{"/etc/hosts": r.Sandbox.HostsPath, "/etc/resolv.conf": r.Sandbox.ResolvConfPath, "/etc/hostname": r.Sandbox.HostnamePath} {
				m := findMount(res.Spec.Mounts, dst)
				if m == nil || m.Source != src || m.Type != "bind" || !slices.Contains(m.Options, want) {
					t.Errorf("readonly=%v: %s = %+v", ro, dst, m)
				}
			}
			if res.Spec.Root.Readonly != ro {
				t.Errorf("root readonly = %v, want %v", res.Spec.Root.Readonly, ro)
			}
		}
	})
	t.Run("a CRI mount covers /etc/hosts", func(t *testing.T) {
		r := testRequest()
		r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/x/etc-hosts"}}
		res := mustGenerate(t, testHost(), r)
		n := 0
		for _, m := range res.Spec.Mounts {
			if m.Destination == "/etc/hosts" {
				n++
				if m.Source != "/var/lib/kubelet/pods/x/etc-hosts" {
					t.Errorf("/etc/hosts from %s, want kubelet's", m.Source)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d mounts at /etc/hosts, want 1", n)
		}
	})
	t.Run("no sandbox files: none mounted", func(t *testing.T) {
		r := testRequest()
		r.Sandbox.HostsPath, r.Sandbox.ResolvConfPath, r.Sandbox.HostnamePath = "", "", ""
		res := mustGenerate(t, testHost(), r)
		for _, dst := range []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
			if findMount(res.Spec.Mounts, dst) != nil {
				t.Errorf("unexpected mount at %s", dst)
			}
		}
	})
}

func TestCRIMounts(t *testing.T) {
	cases := []struct {
		name         string
		m            *runtime.Mount
		rro          bool // host supports rro
		wantOpts     []string
		wantRootProp string
		wantNeed     string
		err          error
	}{
		{name: "private rw", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data"},
			wantOpts: []string{"rbind", "rprivate", "rw"}},
		{name: "readonly", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true},
			wantOpts: []string{"rbind", "rprivate", "ro"}},
		{name: "host to container", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			wantOpts: []string{"rbind", "rslave", "rw"}, wantRootProp: "rslave", wantNeed: "rslave"},
		{name: "bidirectional", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			wantOpts: []string{"rbind", "rshared", "rw"}, wantRootProp: "rshared", wantNeed: "rshared"},
		{name: "selinux relabel ignored", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", SelinuxRelabel: true},
			wantOpts: []string{"rbind", "rprivate", "rw"}},
		{name: "mount options", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"noexec", "nosuid"}},
			wantOpts: []string{"rbind", "rprivate", "rw", "noexec", "nosuid"}},
		{name: "recursive read-only", rro: true, m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true},
			wantOpts: []string{"rbind", "rprivate", "rro"}},
		{name: "rro unsupported by runtime", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true}, err: errInvalid},
		{name: "rro without readonly", rro: true, m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", RecursiveReadOnly: true}, err: errInvalid},
		{name: "rro with slave propagation", rro: true, m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, err: errInvalid},
		{name: "disallowed mount option", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"bind,suid"}}, err: errInvalid},
		{name: "relative container path", m: &runtime.Mount{ContainerPath: "data", HostPath: "/srv/data"}, err: errInvalid},
		{name: "relative host path", m: &runtime.Mount{ContainerPath: "/data", HostPath: "srv"}, err: errInvalid},
		{name: "root container path", m: &runtime.Mount{ContainerPath: "/./", HostPath: "/srv"}, err: errInvalid},
		{name: "unknown propagation", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: 9}, err: errInvalid},
		{name: "id-mapped", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/srv/data", UidMappings: []*runtime.IDMapping{{HostId: 1, Length: 1}}}, err: errInvalid},
		{name: "unresolved image volume", m: &runtime.Mount{ContainerPath: "/data", Image: &runtime.ImageSpec{Image: "sha256:x"}}, err: errdefs.ErrUnimplemented},
		{name: "resolved image volume is read-only", m: &runtime.Mount{ContainerPath: "/data", HostPath: "/var/lib/crid/iv/x", Image: &runtime.ImageSpec{Image: "sha256:x"}},
			wantOpts: []string{"rbind", "rprivate", "ro"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost()
			h.RecursiveReadOnlyMounts = tc.rro
			r := testRequest()
			r.Config.Mounts = []*runtime.Mount{tc.m}
			res, err := Generate(h, r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			m := findMount(res.Spec.Mounts, "/data")
			if m == nil || m.Type != "bind" || m.Source != tc.m.HostPath || !slices.Equal(m.Options, tc.wantOpts) {
				t.Fatalf("mount = %+v, want options %v", m, tc.wantOpts)
			}
			if res.Spec.Linux.RootfsPropagation != tc.wantRootProp {
				t.Errorf("rootfs propagation = %q, want %q", res.Spec.Linux.RootfsPropagation, tc.wantRootProp)
			}
			if !slices.Equal(res.HostPaths, []string{tc.m.HostPath}) {
				t.Errorf("host paths = %v", res.HostPaths)
			}
			if tc.wantNeed != "" && (len(res.Propagation) != 1 || res.Propagation[0] != (PropagationNeed{tc.m.HostPath, tc.wantNeed})) {
				t.Errorf("propagation needs = %v, want %s", res.Propagation, tc.wantNeed)
			}
		})
	}
}

func TestMountOverridesAndOrder(t *testing.T) {
	r := testRequest()
	r.Config.Mounts = []*runtime.Mount{
		{ContainerPath: "/var/log/app/deep/er", HostPath: "/h/c"},
		{ContainerPath: "/dev/termination-log", HostPath: "/h/term"},
		{ContainerPath: "/var/log", HostPath: "/h/a"},
		{ContainerPath: "/var/log/app", HostPath: "/h/b"},
		{ContainerPath: "/proc", HostPath: "/h/proc"}, // replaces the default proc
		{ContainerPath: "/both/rshared", HostPath: "/h/s", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/both/rslave", HostPath: "/h/l", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	}
	res := mustGenerate(t, testHost(), r)
	ms := res.Spec.Mounts
	// Parents before children, for every pair.
	for i := range ms {
		for j := i + 1; j < len(ms); j++ {
			if strings.HasPrefix(ms[i].Destination, ms[j].Destination+"/") {
				t.Errorf("%s (index %d) is mounted before its parent %s (index %d)", ms[i].Destination, i, ms[j].Destination, j)
			}
		}
	}
	if m := findMount(ms, "/proc"); m.Type != "bind" || m.Source != "/h/proc" {
		t.Errorf("/proc = %+v, want the CRI bind", m)
	}
	if res.Spec.Linux.RootfsPropagation != "rshared" {
		t.Errorf("rshared then rslave: rootfs propagation = %q, want rshared", res.Spec.Linux.RootfsPropagation)
	}
	if want := []string{"/h/c", "/h/term", "/h/a", "/h/b", "/h/proc", "/h/s", "/h/l"}; !slices.Equal(res.HostPaths, want) {
		t.Errorf("host paths = %v, want %v", res.HostPaths, want)
	}

	// A CRI /dev drops every default below /dev (but the pod's shm stays).
	r = testRequest()
	r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/dev", HostPath: "/dev"}}
	res = mustGenerate(t, testHost(), r)
	for _, m := range res.Spec.Mounts {
		if strings.HasPrefix(m.Destination, "/dev/") && m.Destination != "/dev/shm" {
			t.Errorf("default %s kept under a CRI /dev", m.Destination)
		}
	}
	if m := findMount(res.Spec.Mounts, "/dev"); m.Type != "bind" {
		t.Errorf("/dev = %+v", m)
	}
}
