package oci

import (
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"cmd1", "cmd2"}}
	cases := []struct {
		name          string
		img           ocispec.ImageConfig
		command, args []string
		want          []string
		err           error
	}{
		{"neither: entrypoint+cmd", img, nil, nil, []string{"/entry", "cmd1", "cmd2"}, nil},
		{"command only: command, image cmd ignored", img, []string{"/bin/sh"}, nil, []string{"/bin/sh"}, nil},
		{"args only: entrypoint+args", img, nil, []string{"a"}, []string{"/entry", "a"}, nil},
		{"both: command+args", img, []string{"/bin/sh", "-c"}, []string{"echo hi"}, []string{"/bin/sh", "-c", "echo hi"}, nil},
		{"image cmd only", ocispec.ImageConfig{Cmd: []string{"/bin/top"}}, nil, nil, []string{"/bin/top"}, nil},
		{"empty entrypoint string is no entrypoint", ocispec.ImageConfig{Entrypoint: []string{""}, Cmd: []string{"/x"}}, nil, nil, []string{"/x"}, nil},
		{"args only without entrypoint", ocispec.ImageConfig{Cmd: []string{"/x"}}, nil, []string{"/y", "z"}, []string{"/y", "z"}, nil},
		{"nothing at all", ocispec.ImageConfig{}, nil, nil, nil, errInvalid},
		{"empty command string", ocispec.ImageConfig{}, []string{""}, nil, nil, errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Image.Config = tc.img
			r.Config.Command, r.Config.Args = tc.command, tc.args
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err == nil && !slices.Equal(res.Spec.Process.Args, tc.want) {
				t.Fatalf("args = %q, want %q", res.Spec.Process.Args, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	kv := func(k, v string) *runtime.KeyValue { return &runtime.KeyValue{Key: k, Value: []byte(v)} }
	cases := []struct {
		name     string
		imgEnv   []string
		criEnv   []*runtime.KeyValue
		tty      bool
		hostname string
		want     []string
		err      error
	}{
		{"defaults", nil, nil, false, "pod-host",
			[]string{defaultPathEnv, "HOSTNAME=pod-host"}, nil},
		{"image then CRI, CRI overrides in place", []string{"A=1", "B=2"}, []*runtime.KeyValue{kv("A", "x"), kv("C", "3")}, false, "pod-host",
			[]string{defaultPathEnv, "HOSTNAME=pod-host", "A=x", "B=2", "C=3"}, nil},
		{"image PATH replaces the default", []string{"PATH=/opt/bin"}, nil, false, "pod-host",
			[]string{"PATH=/opt/bin", "HOSTNAME=pod-host"}, nil},
		{"no pod hostname: the node's", nil, nil, false, "",
			[]string{defaultPathEnv, "HOSTNAME=node1"}, nil},
		{"tty adds TERM", nil, nil, true, "pod-host",
			[]string{defaultPathEnv, "HOSTNAME=pod-host", "TERM=xterm"}, nil},
		{"tty keeps the given TERM", []string{"TERM=vt100"}, nil, true, "pod-host",
			[]string{defaultPathEnv, "HOSTNAME=pod-host", "TERM=vt100"}, nil},
		{"value with =", nil, []*runtime.KeyValue{kv("Q", "a=b")}, false, "pod-host",
			[]string{defaultPathEnv, "HOSTNAME=pod-host", "Q=a=b"}, nil},
		{"malformed image entry dropped", []string{"=x", "OK=1"}, nil, false, "h",
			[]string{defaultPathEnv, "HOSTNAME=h", "OK=1"}, nil},
		{"empty CRI key", nil, []*runtime.KeyValue{kv("", "x")}, false, "h", nil, errInvalid},
		{"CRI key with =", nil, []*runtime.KeyValue{kv("A=B", "x")}, false, "h", nil, errInvalid},
		{"NUL in value", nil, []*runtime.KeyValue{kv("A", "x\x00y")}, false, "h", nil, errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Image.Config = ocispec.ImageConfig{Cmd: []string{"/x"}, Env: tc.imgEnv}
			r.Config.Envs, r.Config.Tty = tc.criEnv, tc.tty
			r.Sandbox.Hostname = tc.hostname
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err == nil && !slices.Equal(res.Spec.Process.Env, tc.want) {
				t.Fatalf("env = %q, want %q", res.Spec.Process.Env, tc.want)
			}
			if err == nil && res.Spec.Process.Terminal != tc.tty {
				t.Fatalf("terminal = %v, want %v", res.Spec.Process.Terminal, tc.tty)
			}
		})
	}
}

func TestWorkingDir(t *testing.T) {
	cases := []struct {
		name, cri, img, want string
		err                  error
	}{
		{"default", "", "", "/", nil},
		{"image", "", "/srv", "/srv", nil},
		{"relative image dir from /", "", "srv/app", "/srv/app", nil},
		{"CRI over image", "/work", "/srv", "/work", nil},
		{"CRI cleaned", "/work/../tmp/", "", "/tmp", nil},
		{"relative CRI dir", "work", "", "", errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Image.Config = ocispec.ImageConfig{Cmd: []string{"/x"}, WorkingDir: tc.img}
			r.Config.WorkingDir = tc.cri
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err == nil && res.Spec.Process.Cwd != tc.want {
				t.Fatalf("cwd = %q, want %q", res.Spec.Process.Cwd, tc.want)
			}
		})
	}
}

func TestRlimitNofile(t *testing.T) {
	cases := []struct {
		name        string
		hard        uint64
		sysResource bool
		want        uint64
	}{
		{"clamped to crid's hard limit", 20000, false, 20000},
		{"not clamped with CAP_SYS_RESOURCE", 20000, true, defaultNofile},
		{"higher hard limit", 4 << 20, false, defaultNofile},
		{"unknown hard limit", 0, false, defaultNofile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost()
			h.NofileHardLimit, h.HasCapSysResource = tc.hard, tc.sysResource
			r := testRequest()
			r.Image.Config.Cmd = []string{"/x"}
			res := mustGenerate(t, h, r)
			rl := res.Spec.Process.Rlimits
			if len(rl) != 1 || rl[0].Type != "RLIMIT_NOFILE" || rl[0].Hard != tc.want || rl[0].Soft != tc.want {
				t.Fatalf("rlimits = %+v, want NOFILE %d", rl, tc.want)
			}
		})
	}
}
