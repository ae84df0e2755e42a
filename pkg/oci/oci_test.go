package oci

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func mustJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// jsonEqual compares two values by their JSON encoding (nil pointers and
// empty structs differ, as they do in config.json).
func jsonEqual(a, b any) bool {
	if reflect.ValueOf(a).IsNil() != reflect.ValueOf(b).IsNil() {
		return false
	}
	return mustJSON(a) == mustJSON(b)
}

// fullRequest exercises most of the mapping rules at once.
func fullRequest(t *testing.T) *Request {
	r := testRequest()
	r.Image.Rootfs = fakeRootfs(t)
	r.Image.Config.Env = []string{"LANG=C"}
	r.Config.Envs = []*runtime.KeyValue{{Key: "MODE", Value: []byte("prod")}}
	r.Config.Tty = true
	r.Config.Mounts = []*runtime.Mount{
		{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		{ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/uid-1/containers/app/0"},
	}
	r.Config.Devices = []*runtime.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rwm"}}
	r.Config.Linux.Resources = &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 32 << 20, OomScoreAdj: 1000}
	r.Sandbox.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}
	s := sc(r)
	s.RunAsUser = i64(1000)
	s.NoNewPrivs = true
	s.ReadonlyRootfs = true
	s.Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
	s.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	return r
}

func TestGenerateFullSpecRoundTrip(t *testing.T) {
	res := mustGenerate(t, testHost(), fullRequest(t))
	data, err := json.MarshalIndent(res.Spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("config.json does not decode: %v", err)
	}
	if !reflect.DeepEqual(&back, res.Spec) {
		t.Fatalf("round trip differs:\n%s\nvs\n%s", data, mustJSON(&back))
	}
	// The essentials of a config.json runc accepts.
	sp := res.Spec
	if sp.Version != SpecVersion || sp.Root.Path != "rootfs" || !sp.Root.Readonly || sp.Process.Cwd == "" ||
		len(sp.Process.Args) == 0 || sp.Linux == nil || !sp.Process.NoNewPrivileges || !sp.Process.Terminal {
		t.Fatalf("incomplete spec: %s", data)
	}
	if sp.Process.User.UID != 1000 || sp.Process.User.GID != 1000 {
		t.Fatalf("user = %+v", sp.Process.User)
	}
	if c := sp.Process.Capabilities; len(c.Bounding) != 1 || len(c.Effective) != 0 {
		t.Fatalf("capabilities = %+v", c)
	}
	if sp.Linux.Seccomp == nil || sp.Linux.RootfsPropagation != "rslave" || sp.Linux.Sysctl["net.ipv4.ping_group_range"] == "" {
		t.Fatalf("linux = %s", mustJSON(sp.Linux))
	}
	if want := []string{"/srv/data", "/var/lib/kubelet/pods/uid-1/containers/app/0"}; !reflect.DeepEqual(res.HostPaths, want) {
		t.Fatalf("host paths = %v", res.HostPaths)
	}
}

func TestAnnotations(t *testing.T) {
	cases := []struct {
		name, override, userSpecified, want string
	}{
		{"user specified image", "", "busybox:latest", "busybox:latest"},
		{"caller's name wins", "docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox:latest"},
		{"falls back to the image id", "", "", "sha256:abc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Image.Name = tc.override
			r.Config.Image.UserSpecifiedImage = tc.userSpecified
			a := mustGenerate(t, testHost(), r).Spec.Annotations
			want := map[string]string{
				AnnotationContainerType: "container", AnnotationSandboxID: "sb1", AnnotationSandboxName: "pod",
				AnnotationSandboxNamespace: "default", AnnotationSandboxUID: "uid-1", AnnotationContainerName: "app",
				AnnotationImageName: tc.want,
			}
			if !reflect.DeepEqual(a, want) {
				t.Fatalf("annotations = %v, want %v", a, want)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	cases := []struct {
		name string
		mut  func(r *Request)
		kind error
	}{
		{"nil config", func(r *Request) { r.Config = nil }, errdefs.ErrInvalidArgument},
		{"no id", func(r *Request) { r.ID = "" }, errdefs.ErrInvalidArgument},
		{"no command", func(r *Request) { r.Image.Config.Cmd = nil }, errdefs.ErrInvalidArgument},
		{"no linux section at all is fine", func(r *Request) { r.Config.Linux = nil; r.Sandbox.InfraPID = 1 }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			tc.mut(r)
			_, err := Generate(testHost(), r)
			wantErr(t, err, tc.kind)
			if err != nil && r.Config != nil && r.ID != "" && !strings.Contains(err.Error(), `"app"`) {
				t.Errorf("error %q does not name the container", err)
			}
		})
	}
	// A nil Host is a host that grants nothing: no capabilities at all.
	res, err := Generate(nil, testRequest())
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Spec.Process.Capabilities; len(c.Bounding) != 0 || len(res.Warnings) != len(DefaultCapabilities) {
		t.Fatalf("capabilities %v, warnings %v", c.Bounding, res.Warnings)
	}
}
