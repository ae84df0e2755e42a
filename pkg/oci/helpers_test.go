package oci

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// testHost is a host like this machine: no CAP_SYS_RESOURCE in crid's
// bounding set, cgroup v1, a nofile hard limit of 20000.
func testHost() *Host {
	var bnd []string
	for _, c := range capNames {
		if c != "CAP_SYS_RESOURCE" {
			bnd = append(bnd, c)
		}
	}
	return &Host{
		CapabilityBoundingSet: bnd,
		CurrentOOMScoreAdj:    0,
		NofileHardLimit:       20000,
		CgroupDriver:          "cgroupfs",
		SwapAccounting:        true,
		Hostname:              "node1",
		LookupDevice:          fakeDevices,
		ReadFile: func(p string) ([]byte, error) {
			return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
		},
	}
}

// fakeDevices knows /dev/fuse, /dev/kvm and a directory /dev/snd.
func fakeDevices(p string) ([]specs.LinuxDevice, error) {
	mode := os.FileMode(0o666)
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor, FileMode: &mode}
	}
	switch p {
	case "/dev/fuse":
		return []specs.LinuxDevice{dev(p, 10, 229)}, nil
	case "/dev/kvm":
		return []specs.LinuxDevice{dev(p, 10, 232)}, nil
	case "/dev/snd":
		return []specs.LinuxDevice{dev("/dev/snd/controlC0", 116, 0), dev("/dev/snd/timer", 116, 33)}, nil
	}
	return nil, &os.PathError{Op: "stat", Path: p, Err: os.ErrNotExist}
}

// testRequest is a minimal valid request: an image with an entrypoint, a
// pod with pinned namespaces and shared PID namespace off.
func testRequest() *Request {
	return &Request{
		ID: "c1",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Image:    &runtime.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "busybox:latest"},
			Linux: &runtime.LinuxContainerConfig{
				SecurityContext: &runtime.LinuxContainerSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
				},
			},
		},
		Sandbox: SandboxInfo{
			ID: "sb1", Name: "pod", Namespace: "default", UID: "uid-1",
			Hostname:  "pod-host",
			NetNSPath: "/run/crid/netns/sb1", IPCNSPath: "/run/crid/sandboxes/sb1/ns/ipc",
			UTSNSPath: "/run/crid/sandboxes/sb1/ns/uts", InfraPID: 4242,
			ResolvConfPath: "/run/crid/sandboxes/sb1/resolv.conf",
			HostsPath:      "/run/crid/sandboxes/sb1/hosts",
			HostnamePath:   "/run/crid/sandboxes/sb1/hostname",
			ShmPath:        "/run/crid/sandboxes/sb1/shm",
			CgroupParent:   "/kubepods/besteffort/poduid-1",
		},
		Image: ImageInput{Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}},
	}
}

// sc returns the request's security context.
func sc(r *Request) *runtime.LinuxContainerSecurityContext { return r.Config.Linux.SecurityContext }

func mustGenerate(t *testing.T, h *Host, r *Request) *Result {
	t.Helper()
	res, err := Generate(h, r)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return res
}

// wantErr checks that err wraps kind (nil kind: no error expected).
func wantErr(t *testing.T, err, kind error) {
	t.Helper()
	switch {
	case kind == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case kind != nil && err == nil:
		t.Fatalf("expected an error wrapping %v, got none", kind)
	case kind != nil && !errors.Is(err, kind):
		t.Fatalf("error %v does not wrap %v", err, kind)
	}
}

var errInvalid = errdefs.ErrInvalidArgument

// writeFiles creates files (relative path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
