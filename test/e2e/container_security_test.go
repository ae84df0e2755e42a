package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultCaps is the capability set of a container that asks for none
// (containerd's and Docker's default, 0xa80425fb).
var defaultCaps = capMask(unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER,
	unix.CAP_MKNOD, unix.CAP_NET_RAW, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE, unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE)

func capMask(caps ...int) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

// procCaps reads the Cap* masks of a /proc/<pid>/status dump.
func procCaps(t *testing.T, status string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for k, v := range statusLines(status) {
		if strings.HasPrefix(k, "Cap") {
			m, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", k, v, err)
			}
			out[k] = m
		}
	}
	return out
}

// cridBounding is crid's own capability bounding set: what "all
// capabilities" means (this machine has no CAP_SYS_RESOURCE).
func cridBounding(t *testing.T, e *ctrEnv) uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	return procCaps(t, string(data))["CapBnd"]
}

const statusScript = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status"

// TestContainerCapabilities checks CapEff, CapPrm and CapBnd inside the
// container after capability add and drop, for root and non-root.
func TestContainerCapabilities(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("caps", nil)
	busybox := e.image("busybox")
	all := cridBounding(t, e)
	if all&(1<<unix.CAP_SYS_RESOURCE) != 0 {
		t.Logf("crid holds CAP_SYS_RESOURCE here; the test still compares with crid's own bounding set")
	}
	added := (defaultCaps | capMask(unix.CAP_NET_ADMIN, unix.CAP_SYS_TIME)) &^ capMask(unix.CAP_CHOWN, unix.CAP_KILL)
	for _, tc := range []struct {
		name      string
		add, drop []string
		uid       *runtime.Int64Value
		eff, bnd  uint64
	}{
		{name: "default", eff: defaultCaps, bnd: defaultCaps},
		{name: "add-drop", add: []string{"NET_ADMIN", "SYS_TIME"}, drop: []string{"CHOWN", "KILL"}, eff: added, bnd: added},
		{name: "add-all", add: []string{"ALL"}, eff: all, bnd: all},
		{name: "drop-all-add-one", add: []string{"NET_BIND_SERVICE"}, drop: []string{"ALL"},
			eff: capMask(unix.CAP_NET_BIND_SERVICE), bnd: capMask(unix.CAP_NET_BIND_SERVICE)},
		// A non-root process loses its effective and permitted sets at
		// exec; the bounding set stays.
		{name: "non-root", uid: &runtime.Int64Value{Value: 1000}, eff: 0, bnd: defaultCaps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ctrConfig(tc.name, busybox, sh(statusScript)...)
			sc := secCtx(cfg)
			sc.RunAsUser = tc.uid
			if tc.add != nil || tc.drop != nil {
				sc.Capabilities = &runtime.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop}
			}
			out := p.in(t).output(cfg)
			caps := procCaps(t, out)
			if caps["CapEff"] != tc.eff || caps["CapPrm"] != tc.eff || caps["CapBnd"] != tc.bnd {
				t.Fatalf("CapEff %x CapPrm %x CapBnd %x, want eff/prm %x bnd %x", caps["CapEff"], caps["CapPrm"], caps["CapBnd"], tc.eff, tc.bnd)
			}
			if tc.eff != 0 && caps["CapAmb"] != 0 {
				t.Errorf("ambient capabilities %x, want none", caps["CapAmb"])
			}
		})
	}

	cfg := ctrConfig("bad-cap", busybox, "/bin/true")
	secCtx(cfg).Capabilities = &runtime.Capability{AddCapabilities: []string{"NOT_A_CAP"}}
	if _, err := p.tryCreate(cfg); err == nil || !strings.Contains(err.Error(), "NOT_A_CAP") {
		t.Errorf("CreateContainer adding capability NOT_A_CAP: %v, want an error naming it", err)
	}
}

// TestContainerNoNewPrivs: no_new_privs sets the process's NoNewPrivs flag,
// which is off otherwise.
func TestContainerNoNewPrivs(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("nnp", nil)
	busybox := e.image("busybox")
	for _, nnp := range []bool{true, false} {
		cfg := ctrConfig(fmt.Sprintf("nnp-%v", nnp), busybox, sh(statusScript)...)
		secCtx(cfg).NoNewPrivs = nnp
		out := p.output(cfg)
		want := map[bool]string{true: "1", false: "0"}[nnp]
		if got := statusLines(out)["NoNewPrivs"]; got != want {
			t.Errorf("no_new_privs=%v: NoNewPrivs %q, want %s", nnp, got, want)
		}
	}
}

// TestContainerPrivileged: a privileged container (in a pod that allows
// them) has all of crid's capabilities, no seccomp filter, the host's
// devices, a writable /sys and may mount; an unprivileged one in the same
// pod may not. A privileged container in a pod that does not allow them is
// refused.
func TestContainerPrivileged(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("priv", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.Privileged = true
	})
	busybox := e.image("busybox")
	all := cridBounding(t, e)
	hostDevs := len(entries(t, "/dev"))
	script := statusScript + `
mkdir -p /mnt/t && mount -t tmpfs none /mnt/t 2>/dev/null && echo mount=ok || echo mount=failed
grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1 | sed 's/^/sys=/'
echo devs=$(ls /dev | wc -l)`

	cfg := ctrConfig("privileged", busybox, sh(script)...)
	secCtx(cfg).Privileged = true
	out := p.output(cfg)
	m, caps := statusLines(out), procCaps(t, out)
	if caps["CapEff"] != all || caps["CapBnd"] != all {
		t.Errorf("privileged: CapEff %x CapBnd %x, want crid's bounding set %x", caps["CapEff"], caps["CapBnd"], all)
	}
	if m["Seccomp"] != "0" || !strings.Contains(out, "mount=ok") || !strings.Contains(out, "sys=rw") {
		t.Errorf("privileged: want no seccomp, mount allowed, /sys rw; got:\n%s", out)
	}
	if devs := devCount(out); devs < hostDevs/2 || devs < 20 {
		t.Errorf("privileged: %d entries in /dev, the host has %d", devs, hostDevs)
	}

	out = p.output(ctrConfig("unprivileged", busybox, sh(script)...))
	if caps := procCaps(t, out); caps["CapEff"] != defaultCaps || !strings.Contains(out, "mount=failed") || !strings.Contains(out, "sys=ro") {
		t.Errorf("unprivileged container in a privileged pod: want default caps, no mount, /sys ro; got:\n%s", out)
	}
	if devs := devCount(out); devs >= 20 {
		t.Errorf("unprivileged: %d entries in /dev, want only the default devices", devs)
	}

	plain := e.pod("unpriv", nil)
	cfg = ctrConfig("privileged", busybox, "/bin/true")
	secCtx(cfg).Privileged = true
	if _, err := plain.tryCreate(cfg); err == nil {
		t.Errorf("a privileged container was created in a pod that does not allow privileged containers")
	}
}

func devCount(out string) int {
	n, _ := strconv.Atoi(statusLines(strings.ReplaceAll(out, "devs=", "devs:"))["devs"])
	return n
}

// TestContainerSeccomp: RuntimeDefault refuses unshare(CLONE_NEWUSER)
// (which needs no capability) with EPERM; Unconfined allows it; a
// Localhost profile applies its own rules.
func TestContainerSeccomp(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("seccomp", nil)
	busybox := e.image("busybox")
	script := statusScript + "\n/bin/busybox unshare -U /bin/true 2>&1; echo unshare=$?\nmkdir /made 2>&1; echo mkdir=$?"

	profile := filepath.Join(t.TempDir(), "no-mkdir.json")
	denyMkdir := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`
	if err := os.WriteFile(profile, []byte(denyMkdir), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		profile *runtime.SecurityProfile
		mode    string // Seccomp: line
		unshare bool   // unshare -U succeeds
		mkdir   bool
	}{
		{"runtime-default", &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, "2", false, true},
		{"unconfined", &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, "0", true, true},
		{"localhost", &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: profile}, "2", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ctrConfig(tc.name, busybox, sh(script)...)
			secCtx(cfg).Seccomp = tc.profile
			out := p.in(t).output(cfg)
			m := statusLines(strings.NewReplacer("unshare=", "unshare:", "mkdir=", "mkdir:").Replace(out))
			if m["Seccomp"] != tc.mode {
				t.Errorf("Seccomp mode %q, want %s", m["Seccomp"], tc.mode)
			}
			if ok := m["unshare"] == "0"; ok != tc.unshare || (!ok && !strings.Contains(out, "Operation not permitted")) {
				t.Errorf("unshare -U allowed=%v, want %v (EPERM when refused)", ok, tc.unshare)
			}
			if ok := m["mkdir"] == "0"; ok != tc.mkdir || (!ok && !strings.Contains(out, "Operation not permitted")) {
				t.Errorf("mkdir allowed=%v, want %v (EPERM when refused)", ok, tc.mkdir)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}
