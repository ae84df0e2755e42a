package oci

import (
	"os"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestMaskedPaths(t *testing.T) {
	cases := []struct {
		name               string
		privileged         bool
		masked, ro         []string
		wantMasked, wantRO []string
		err                error
	}{
		{name: "defaults", wantMasked: DefaultMaskedPaths, wantRO: DefaultReadonlyPaths},
		{name: "CRI lists", masked: []string{"/proc/x"}, ro: []string{"/proc/y"}, wantMasked: []string{"/proc/x"}, wantRO: []string{"/proc/y"}},
		{name: "explicit empty lists (in-process Unmasked)", masked: []string{}, ro: []string{}, wantMasked: []string{}, wantRO: []string{}},
		{name: "privileged: none", privileged: true, masked: []string{"/proc/x"}},
		{name: "relative path", masked: []string{"proc/x"}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Sandbox.Privileged = true
			s := sc(r)
			s.Privileged, s.MaskedPaths, s.ReadonlyPaths = tc.privileged, tc.masked, tc.ro
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			if !slices.Equal(res.Spec.Linux.MaskedPaths, tc.wantMasked) || !slices.Equal(res.Spec.Linux.ReadonlyPaths, tc.wantRO) {
				t.Fatalf("masked = %v, readonly = %v", res.Spec.Linux.MaskedPaths, res.Spec.Linux.ReadonlyPaths)
			}
		})
	}
}

func TestPrivileged(t *testing.T) {
	h := testHost()
	mode := os.FileMode(0o660)
	h.HostDevices = []specs.LinuxDevice{
		{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0, FileMode: &mode},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode},
	}
	h.AppArmorEnabled, h.AppArmorDefaultProfile = true, "crid-default"

	t.Run("refused in a pod that does not allow it", func(t *testing.T) {
		r := testRequest()
		sc(r).Privileged = true
		_, err := Generate(h, r)
		wantErr(t, err, errInvalid)
	})

	r := testRequest()
	r.Sandbox.Privileged = true
	s := sc(r)
	s.Privileged = true
	s.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	s.Apparmor = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	r.Config.Devices = []*runtime.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "r"}}
	res := mustGenerate(t, h, r)
	sp := res.Spec
	if !slices.Equal(sp.Process.Capabilities.Bounding, h.CapabilityBoundingSet) {
		t.Errorf("bounding = %v", sp.Process.Capabilities.Bounding)
	}
	if sp.Linux.Seccomp != nil || sp.Process.ApparmorProfile != "" {
		t.Errorf("seccomp %v / apparmor %q, want none", sp.Linux.Seccomp, sp.Process.ApparmorProfile)
	}
	if len(sp.Linux.MaskedPaths) != 0 || len(sp.Linux.ReadonlyPaths) != 0 {
		t.Errorf("masked %v readonly %v, want none", sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths)
	}
	var paths []string
	for _, d := range sp.Linux.Devices {
		paths = append(paths, d.Path)
	}
	if !slices.Equal(paths, []string{"/dev/fuse", "/dev/sda"}) {
		t.Errorf("devices = %v, want the CRI one then the host's, no duplicates", paths)
	}
	if rules := sp.Linux.Resources.Devices; len(rules) != 1 || !rules[0].Allow || rules[0].Access != "rwm" || rules[0].Major != nil {
		t.Errorf("device rules = %+v, want allow-all", rules)
	}
}

func TestNoNewPrivs(t *testing.T) {
	for _, v := range []bool{false, true} {
		r := testRequest()
		sc(r).NoNewPrivs = v
		if got := mustGenerate(t, testHost(), r).Spec.Process.NoNewPrivileges; got != v {
			t.Errorf("no_new_privs %v -> %v", v, got)
		}
	}
}

func TestSeccomp(t *testing.T) {
	const localProfile = `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
	  "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},
	             {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
	  "syscalls":[
	    {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
	    {"name":"ptrace","action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_PTRACE"]}},
	    {"names":["mount"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_CHOWN"]}},
	    {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}
	  ]}`
	files := map[string]string{
		"/var/lib/kubelet/seccomp/ok.json":  localProfile,
		"/var/lib/kubelet/seccomp/oci.json": `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO"}]}`,
		"/bad.json":                         `{"defaultAction":"SCMP_ACT_MAYBE"}`,
		"/garbage.json":                     `{`,
		"/badrule.json":                     `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}`,
	}
	h := testHost()
	h.ReadFile = func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	custom := &specs.LinuxSeccomp{DefaultAction: specs.ActLog}
	localhost := func(p string) *runtime.SecurityProfile {
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: p}
	}
	cases := []struct {
		name       string
		profile    *runtime.SecurityProfile
		legacy     string
		unsetIsDef bool
		hostDef    *specs.LinuxSeccomp
		check      func(t *testing.T, p *specs.LinuxSeccomp)
		err        error
	}{
		{name: "unset: unconfined (CRI default)", check: isNil},
		{name: "unset with SeccompUnsetIsDefault", unsetIsDef: true, check: isBuiltin},
		{name: "RuntimeDefault: built-in", profile: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, check: isBuiltin},
		{name: "RuntimeDefault: the host's profile", profile: &runtime.SecurityProfile{}, hostDef: custom,
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if p == nil || p.DefaultAction != specs.ActLog || p == custom {
					t.Fatalf("profile = %+v, want a copy of the host's", p)
				}
			}},
		{name: "Unconfined", profile: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, check: isNil},
		{name: "Localhost, Docker format", profile: localhost("/var/lib/kubelet/seccomp/ok.json"),
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
					t.Fatalf("default action %v", p.DefaultAction)
				}
				var names []string
				for _, s := range p.Syscalls {
					names = append(names, s.Names...)
				}
				// ptrace needs CAP_SYS_PTRACE (not held); mount is excluded by CAP_CHOWN (held).
				if !slices.Equal(names, []string{"read", "write", "personality"}) {
					t.Fatalf("syscalls = %v", names)
				}
				if p.Syscalls[1].Args[0].Value != 8 || p.Syscalls[1].Args[0].Op != specs.OpEqualTo {
					t.Fatalf("args = %+v", p.Syscalls[1].Args)
				}
				if len(nativeArches()) > 0 && !slices.Equal(p.Architectures, nativeArches()) {
					t.Fatalf("architectures = %v, want %v", p.Architectures, nativeArches())
				}
			}},
		{name: "Localhost, OCI format", profile: localhost("/var/lib/kubelet/seccomp/oci.json"),
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if p.DefaultAction != specs.ActAllow || len(p.Syscalls) != 1 || p.Syscalls[0].Names[0] != "chmod" {
					t.Fatalf("profile = %+v", p)
				}
			}},
		{name: "Localhost relative path", profile: localhost("seccomp/ok.json"), err: errInvalid},
		{name: "Localhost missing file", profile: localhost("/nope.json"), err: errInvalid},
		{name: "Localhost bad action", profile: localhost("/bad.json"), err: errInvalid},
		{name: "Localhost malformed JSON", profile: localhost("/garbage.json"), err: errInvalid},
		{name: "Localhost rule without names", profile: localhost("/badrule.json"), err: errInvalid},
		{name: "legacy runtime/default", legacy: "runtime/default", check: isBuiltin},
		{name: "legacy docker/default", legacy: "docker/default", check: isBuiltin},
		{name: "legacy unconfined", legacy: "unconfined", check: isNil},
		{name: "legacy localhost/<path>", legacy: "localhost//var/lib/kubelet/seccomp/oci.json",
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if p == nil || len(p.Syscalls) != 1 {
					t.Fatalf("profile = %+v", p)
				}
			}},
		{name: "legacy garbage", legacy: "strict", err: errInvalid},
		{name: "unknown profile type", profile: &runtime.SecurityProfile{ProfileType: 9}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.SeccompUnsetIsDefault, h.SeccompDefault = tc.unsetIsDef, tc.hostDef
			r := testRequest()
			s := sc(r)
			s.Seccomp, s.SeccompProfilePath = tc.profile, tc.legacy
			res, err := Generate(h, r)
			wantErr(t, err, tc.err)
			if err == nil {
				tc.check(t, res.Spec.Linux.Seccomp)
			}
		})
	}
}

func isNil(t *testing.T, p *specs.LinuxSeccomp) {
	t.Helper()
	if p != nil {
		t.Fatalf("seccomp = %+v, want none", p)
	}
}

func isBuiltin(t *testing.T, p *specs.LinuxSeccomp) {
	t.Helper()
	if p == nil || p.DefaultAction != specs.ActAllow || !deniesSyscall(p, "keyctl") {
		t.Fatalf("seccomp = %+v, want the built-in profile", p)
	}
}

// deniesSyscall reports whether p refuses name unconditionally.
func deniesSyscall(p *specs.LinuxSeccomp, name string) bool {
	for _, s := range p.Syscalls {
		if slices.Contains(s.Names, name) && s.Action == specs.ActErrno && len(s.Args) == 0 {
			return true
		}
	}
	return false
}

func TestDefaultSeccompProfile(t *testing.T) {
	cases := []struct {
		name            string
		caps            []string
		denied, allowed []string
		cloneFiltered   bool
	}{
		{"default caps", DefaultCapabilities,
			[]string{"keyctl", "add_key", "request_key", "mount", "umount2", "unshare", "setns", "pivot_root", "kexec_load",
				"init_module", "finit_module", "delete_module", "open_by_handle_at", "bpf", "perf_event_open", "reboot",
				"swapon", "userfaultfd", "io_uring_setup", "clone3", "settimeofday", "acct", "syslog"},
			[]string{"read", "ptrace", "chroot", "personality"}, true},
		{"SYS_ADMIN allows mounts and namespaces", append([]string{"CAP_SYS_ADMIN"}, DefaultCapabilities...),
			[]string{"keyctl", "init_module", "reboot", "io_uring_setup"},
			[]string{"mount", "unshare", "setns", "clone3", "bpf", "perf_event_open", "syslog"}, false},
		{"capability-gated calls", []string{"CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_PTRACE", "CAP_BPF", "CAP_PERFMON"},
			[]string{"mount", "keyctl"},
			[]string{"init_module", "reboot", "kexec_load", "settimeofday", "kcmp", "userfaultfd", "bpf", "perf_event_open"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultSeccompProfile(tc.caps)
			for _, n := range tc.denied {
				if !deniesSyscall(p, n) {
					t.Errorf("%s is not denied", n)
				}
			}
			for _, n := range tc.allowed {
				if deniesSyscall(p, n) {
					t.Errorf("%s is denied", n)
				}
			}
			var cloneRules int
			for _, s := range p.Syscalls {
				if slices.Contains(s.Names, "clone") {
					cloneRules++
					if len(s.Args) != 1 || s.Args[0].Op != specs.OpMaskedEqual || s.Args[0].Value != s.Args[0].ValueTwo {
						t.Errorf("clone rule %+v", s)
					}
				}
				if slices.Contains(s.Names, "clone3") && (s.ErrnoRet == nil || *s.ErrnoRet != errnoENOSYS) {
					t.Errorf("clone3 must fail with ENOSYS so libc falls back to clone")
				}
			}
			if (cloneRules == len(cloneNamespaceFlags)) != tc.cloneFiltered || (!tc.cloneFiltered && cloneRules != 0) {
				t.Errorf("%d clone rules, filtered = %v", cloneRules, tc.cloneFiltered)
			}
		})
	}
}

func TestAppArmor(t *testing.T) {
	cases := []struct {
		name    string
		enabled bool
		def     string
		profile *runtime.SecurityProfile
		legacy  string
		want    string
		err     error
	}{
		{name: "disabled: runtime default is none", profile: &runtime.SecurityProfile{}, want: ""},
		{name: "enabled, no default loaded", enabled: true, profile: &runtime.SecurityProfile{}, want: ""},
		{name: "enabled with default", enabled: true, def: "crid-default", want: "crid-default"},
		{name: "unconfined", enabled: true, def: "crid-default", profile: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, want: ""},
		{name: "localhost", enabled: true, profile: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "localhost/my-prof"}, want: "my-prof"},
		{name: "localhost without AppArmor", profile: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "p"}, err: errdefs.ErrFailedPrecondition},
		{name: "localhost without name", enabled: true, profile: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost}, err: errInvalid},
		{name: "legacy localhost", enabled: true, legacy: "localhost/p2", want: "p2"},
		{name: "legacy runtime/default", enabled: true, def: "d", legacy: "runtime/default", want: "d"},
		{name: "legacy unconfined", enabled: true, def: "d", legacy: "unconfined", want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost()
			h.AppArmorEnabled, h.AppArmorDefaultProfile = tc.enabled, tc.def
			r := testRequest()
			sc(r).Apparmor, sc(r).ApparmorProfile = tc.profile, tc.legacy
			res, err := Generate(h, r)
			wantErr(t, err, tc.err)
			if err == nil && res.Spec.Process.ApparmorProfile != tc.want {
				t.Fatalf("apparmor = %q, want %q", res.Spec.Process.ApparmorProfile, tc.want)
			}
		})
	}
}
