package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerCommandArgsOverImage checks Kubernetes' rules for command
// and args over the image's Entrypoint ["/bin/sh", "-c"] and Cmd
// ["echo hello; sleep 3600"] (image crid-test/full).
func TestContainerCommandArgsOverImage(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("cmd", nil)
	full := e.image("full")

	t.Run("image entrypoint and cmd", func(t *testing.T) {
		p := p.in(t)
		cfg := ctrConfig("image", full)
		id := p.run(cfg)
		waitLog(t, p.logPath(cfg), "hello\n")
		// busybox sh execs its last command, so compare the spec's args.
		_, info := p.e.status(id)
		if want := []string{"/bin/sh", "-c", "echo hello; sleep 3600"}; info.RuntimeSpec == nil || !slices.Equal(info.RuntimeSpec.Process.Args, want) {
			t.Fatalf("container process args %v, want %q", info.RuntimeSpec.Process, want)
		}
	})
	t.Run("args replace cmd", func(t *testing.T) {
		cfg := ctrConfig("args", full)
		cfg.Args = []string{"echo args $0 $1", "zero", "one"}
		if out := p.in(t).output(cfg); out != "args zero one\n" {
			t.Fatalf("output %q, want the image entrypoint running the args", out)
		}
	})
	t.Run("command replaces entrypoint and cmd", func(t *testing.T) {
		cfg := ctrConfig("command", full, "/bin/echo")
		cfg.Args = []string{"from", "command"}
		if out := p.in(t).output(cfg); out != "from command\n" {
			t.Fatalf("output %q, want command + args only", out)
		}
	})
	t.Run("command without args", func(t *testing.T) {
		cfg := ctrConfig("command-only", full, "/bin/echo", "alone")
		if out := p.in(t).output(cfg); out != "alone\n" {
			t.Fatalf("output %q: the image's cmd must not be appended to a command", out)
		}
	})
}

// TestContainerEnvAndWorkdir checks the environment (image env, then the
// CRI env replacing and adding) and the working directory.
func TestContainerEnvAndWorkdir(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("envpod", nil)
	full, busybox := e.image("full"), e.image("busybox")

	cfg := ctrConfig("env", full, "/bin/env")
	cfg.Envs = []*runtime.KeyValue{
		{Key: "CRID_TEST", Value: []byte("2")},
		{Key: "NEW", Value: []byte("a b=c")},
		{Key: "EMPTY", Value: []byte{}},
	}
	out := p.output(cfg)
	env := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = append(env[k], v)
	}
	for k, want := range map[string]string{
		"CRID_TEST": "2",                             // CRI env replaces the image's
		"NEW":       "a b=c",                         // and adds
		"EMPTY":     "",                              // empty values are kept
		"HOME":      "/home/crid",                    // image env kept
		"PATH":      "/usr/sbin:/usr/bin:/sbin:/bin", // the image's PATH, not a default
		"HOSTNAME":  "envpod",                        // the pod's hostname
	} {
		if got := env[k]; len(got) != 1 || got[0] != want {
			t.Errorf("env %s = %q, want exactly [%q]; env:\n%s", k, got, want, out)
		}
	}

	for _, tc := range []struct {
		name, image, workdir, want string
	}{
		{"wd-image", full, "", "/work"}, // the image's WorkingDir, absent from its layers
		{"wd-config", full, "/tmp", "/tmp"},
		{"wd-default", busybox, "", "/"},
	} {
		cfg := ctrConfig(tc.name, tc.image, "/bin/pwd")
		cfg.WorkingDir = tc.workdir
		if got := p.output(cfg); got != tc.want+"\n" {
			t.Errorf("%s: pwd = %q, want %s", tc.name, got, tc.want)
		}
	}
}

// ids parses the Uid, Gid and Groups lines of /proc/self/status.
type ids struct {
	uid, gid string
	groups   []string
}

func parseIDs(out string) ids {
	m := statusLines(out)
	first := func(s string) string { f := strings.Fields(s); return strings.Join(f[:min(1, len(f))], "") }
	g := strings.Fields(m["Groups"])
	slices.Sort(g)
	return ids{uid: first(m["Uid"]), gid: first(m["Gid"]), groups: g}
}

// TestContainerUserAndGroups checks the process's uid, gid and groups
// against run_as_user, run_as_username, run_as_group, supplemental groups
// and the image's USER. The busybox image has crid (1000:1000), member of
// extra (2000).
func TestContainerUserAndGroups(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("users", nil)
	busybox, nonroot, full := e.image("busybox"), e.image("nonroot"), e.image("full")
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	for _, tc := range []struct {
		name  string
		image string
		sc    *runtime.LinuxContainerSecurityContext
		want  ids
	}{
		{"root", busybox, nil, ids{"0", "0", []string{"0"}}},
		{"run-as-user", busybox, &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000)},
			ids{"1000", "1000", []string{"1000", "2000"}}},
		{"run-as-username", busybox, &runtime.LinuxContainerSecurityContext{RunAsUsername: "crid"},
			ids{"1000", "1000", []string{"1000", "2000"}}},
		{"run-as-group", busybox, &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000)},
			ids{"1000", "3000", []string{"2000", "3000"}}},
		{"unknown-uid", busybox, &runtime.LinuxContainerSecurityContext{RunAsUser: i64(4242)},
			ids{"4242", "0", []string{"0"}}},
		{"supplemental", busybox, &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{5000, 5001}},
			ids{"1000", "1000", []string{"1000", "2000", "5000", "5001"}}},
		{"supplemental-strict", busybox, &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{5000},
			SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict}, ids{"1000", "1000", []string{"1000", "5000"}}},
		{"image-user-name", nonroot, nil, ids{"1000", "1000", []string{"1000", "2000"}}},
		{"image-user-overridden", nonroot, &runtime.LinuxContainerSecurityContext{RunAsUser: i64(0)}, ids{"0", "0", []string{"0"}}},
		{"image-user-uid-gid", full, nil, ids{"1000", "1000", []string{"1000", "2000"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ctrConfig(tc.name, tc.image, "/bin/grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status")
			if tc.sc != nil {
				cfg.Linux = &runtime.LinuxContainerConfig{SecurityContext: tc.sc}
			}
			out := p.in(t).output(cfg)
			if got := parseIDs(out); got.uid != tc.want.uid || got.gid != tc.want.gid || !slices.Equal(got.groups, tc.want.groups) {
				t.Fatalf("got uid %s gid %s groups %v, want %+v; status:\n%s", got.uid, got.gid, got.groups, tc.want, out)
			}
		})
	}

	// ContainerStatus.user reports the identity the process started with.
	cfg := ctrConfig("status-user", busybox, "/bin/true")
	sc := secCtx(cfg)
	sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups = i64(1000), i64(3000), []int64{5000}
	st, _ := p.runToExit(cfg)
	if u := st.GetUser().GetLinux(); u.GetUid() != 1000 || u.GetGid() != 3000 || !slices.Equal(sortedInt64(u.GetSupplementalGroups()), []int64{2000, 3000, 5000}) {
		t.Errorf("ContainerStatus.user = %v, want uid 1000 gid 3000 groups [2000 3000 5000]", st.GetUser())
	}

	// A user name the image does not have is refused.
	cfg = ctrConfig("no-such-user", busybox, "/bin/id")
	secCtx(cfg).RunAsUsername = "nosuchuser"
	if _, err := p.tryCreate(cfg); err == nil || !strings.Contains(err.Error(), "nosuchuser") {
		t.Errorf("CreateContainer as an unknown user: %v, want an error naming nosuchuser", err)
	}
}

// TestContainerReadOnlyRootfs: with readonly_rootfs writes to the root file
// system fail; without, they succeed.
func TestContainerReadOnlyRootfs(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("rofs", nil)
	busybox := e.image("busybox")
	script := "touch /newfile 2>&1; echo rc=$?; echo x > /tmp/f 2>&1; echo tmp=$?"

	ro := ctrConfig("ro", busybox, sh(script)...)
	secCtx(ro).ReadonlyRootfs = true
	out := p.output(ro)
	if !strings.Contains(out, "rc=1") || !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "tmp=1") {
		t.Errorf("read-only rootfs: writes did not fail with EROFS:\n%s", out)
	}
	if out := p.output(ctrConfig("rw", busybox, sh(script)...)); !strings.Contains(out, "rc=0") || !strings.Contains(out, "tmp=0") {
		t.Errorf("writable rootfs: writes failed:\n%s", out)
	}
}

// TestContainerExitCodes checks exit codes and reasons, and that a
// command the image lacks fails Create or Start with a clear error and
// leaves nothing behind.
func TestContainerExitCodes(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("exits", nil)
	busybox := e.image("busybox")
	var procs []ctrProc
	for _, tc := range []struct {
		script string
		code   int32
		reason string
	}{
		{"exit 0", 0, "Completed"},
		{"exit 3", 3, "Error"},
		{"exit 255", 255, "Error"},
		{"echo bye; false", 1, "Error"},
	} {
		cfg := ctrConfig(fmt.Sprintf("exit-%d", tc.code), busybox, sh(tc.script)...)
		st, out := p.runToExit(cfg)
		if st.ExitCode != tc.code || st.Reason != tc.reason || st.FinishedAt == 0 {
			t.Errorf("%q: exit %d reason %q finished %d, want %d %q; log %q", tc.script, st.ExitCode, st.Reason, st.FinishedAt, tc.code, tc.reason, out)
		}
	}

	// Killed from outside: 128 + SIGKILL.
	id := p.run(ctrConfig("killed", busybox, "/bin/sleep", "3600"))
	proc := e.proc(id)
	if err := syscall.Kill(proc.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := e.waitExited(id); st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("container killed by SIGKILL: exit %d reason %q, want 137 Error", st.ExitCode, st.Reason)
	}
	procs = append(procs, proc)

	// A long-running one, for the leak check after removal.
	id = p.run(ctrConfig("sleeper", busybox, "/bin/sleep", "3600"))
	procs = append(procs, e.proc(id))

	cfg := ctrConfig("missing", busybox, "/bin/no-such-binary")
	id, err := p.tryCreate(cfg)
	if err == nil {
		_, err = e.d.Runtime.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id})
	}
	if err == nil {
		st := e.waitExited(id)
		t.Errorf("a missing binary started: status %v exit %d", st.State, st.ExitCode)
	} else if !strings.Contains(err.Error(), "no-such-binary") {
		t.Errorf("error for a missing binary does not name it: %v", err)
	}
	p.removeAll()
	e.assertNoContainerLeftovers(procs...)
}

func sortedInt64(v []int64) []int64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}
