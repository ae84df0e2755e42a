package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestVersionReportsCrid(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	v, err := d.Runtime.Version(ctxT(t), &runtime.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "crid" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %+v", v)
	}
}

func TestStatusNetworkReadyFollowsCNIConfig(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	ctx := ctxT(t)
	st, err := d.Runtime.Status(ctx, &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rt, nw := condition(st, runtime.RuntimeReady), condition(st, runtime.NetworkReady)
	if rt == nil || !rt.Status {
		t.Errorf("RuntimeReady = %+v", rt)
	}
	if nw == nil || nw.Status || nw.Reason != "NetworkPluginNotReady" || nw.Message == "" {
		t.Fatalf("NetworkReady with an empty conf dir = %+v", nw)
	}
	conf := `{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(d.Base, "cni", "10-t.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err = d.Runtime.Status(ctx, &runtime.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if nw := condition(st, runtime.NetworkReady); nw.Status {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NetworkReady still false after a config appeared: %+v", condition(st, runtime.NetworkReady))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func condition(st *runtime.StatusResponse, typ string) *runtime.RuntimeCondition {
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

func TestVerboseStatusShowsConfigAndHandlers(t *testing.T) {
	d := framework.Start(t, framework.Options{ExtraConfig: "[runtimes.runc]\npath = \"runc\"\n[runtimes.runc2]\npath = \"runc\"\n"})
	st, err := d.Runtime.Status(ctxT(t), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Root string }
	if err := json.Unmarshal([]byte(st.Info["config"]), &cfg); err != nil || cfg.Root != d.Root {
		t.Fatalf("verbose config = %q (%v), want root %s", st.Info["config"], err, d.Root)
	}
	var names []string
	for _, h := range st.RuntimeHandlers {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "runc,runc2," {
		t.Fatalf("runtime handlers = %q", names)
	}
}

func TestRuntimeConfigReportsCgroupDriver(t *testing.T) {
	for _, tc := range []struct {
		driver string
		want   runtime.CgroupDriver
	}{{"cgroupfs", runtime.CgroupDriver_CGROUPFS}, {"systemd", runtime.CgroupDriver_SYSTEMD}} {
		t.Run(tc.driver, func(t *testing.T) {
			d := framework.Start(t, framework.Options{ExtraConfig: ""})
			d.Stop()
			appendConfig(t, d, "cgroup_driver = \""+tc.driver+"\"\n")
			d.Launch()
			rc, err := d.Runtime.RuntimeConfig(ctxT(t), &runtime.RuntimeConfigRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := rc.GetLinux().GetCgroupDriver(); got != tc.want {
				t.Fatalf("cgroup driver = %v, want %v", got, tc.want)
			}
		})
	}
}

// appendConfig adds top-level keys by putting them before the first table.
func appendConfig(t *testing.T, d *framework.Daemon, keys string) {
	data, err := os.ReadFile(d.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Config, []byte(keys+string(data)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPodCIDRSurvivesRestart(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	ctx := ctxT(t)
	_, err := d.Runtime.UpdateRuntimeConfig(ctx, &runtime.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.244.1.0/24"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, crash := range []bool{false, true} {
		d.Restart(crash)
		st, err := d.Runtime.Status(ctx, &runtime.StatusRequest{Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Info["podCIDR"]; got != "10.244.1.0/24" {
			t.Fatalf("after restart (crash=%v) pod CIDR = %q", crash, got)
		}
	}
}

func TestUpdateRuntimeConfigRejectsBadCIDR(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	_, err := d.Runtime.UpdateRuntimeConfig(ctxT(t), &runtime.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.244.1.0/33"}},
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "10.244.1.0/33") {
		t.Fatalf("err = %v, want InvalidArgument naming the CIDR", err)
	}
}

func TestNotYetBuiltRPCsAreUnimplemented(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	_, err := d.Runtime.CheckpointContainer(ctxT(t), &runtime.CheckpointContainerRequest{ContainerId: "x"})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("CheckpointContainer err = %v, want Unimplemented", err)
	}
}

func TestSIGTERMRemovesSocket(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	st, err := os.Stat(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o660 {
		t.Errorf("socket mode = %v, want 0660", perm)
	}
	d.Stop()
	if _, err := os.Stat(d.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there after SIGTERM: %v", err)
	}
}

func TestStaleSocketFromCrashIsReplaced(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	d.Kill()
	if _, err := os.Stat(d.Socket); err != nil {
		t.Fatalf("expected the killed daemon to leave its socket: %v", err)
	}
	d.Launch()
	if _, err := d.Runtime.Version(ctxT(t), &runtime.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestSecondDaemonOnSameRootFailsFast(t *testing.T) {
	d := framework.Start(t, framework.Options{})
	start := time.Now()
	out, err := exec.Command(framework.Binary(t), "--config", d.Config, "--listen", filepath.Join(d.Base, "other.sock")).CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Fatalf("second crid on the same root: err=%v out=%s", err, out)
	}
	if !strings.Contains(string(out), "locked by another process") {
		t.Fatalf("unclear message: %s", out)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("second crid took %s to give up", time.Since(start))
	}
	// The first one is unharmed.
	if _, err := d.Runtime.Version(ctxT(t), &runtime.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigRejectedNamingKey(t *testing.T) {
	framework.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("root = \"/tmp/x\"\n[cni]\nconfdir = \"/etc/cni\"\n"), 0o644)
	out, err := exec.Command(framework.Binary(t), "--config", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cni.confdir") {
		t.Fatalf("bad config: err=%v out=%s", err, out)
	}
}
