package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestDefaultTOMLMatchesDefault(t *testing.T) {
	cfg := Default()
	cfg.Runtimes = nil
	if err := Decode([]byte(DefaultTOML), cfg); err != nil {
		t.Fatalf("decode default TOML: %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("DefaultTOML and Default() differ:\n%+v\n%+v", cfg, Default())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.toml")
	cfg, err := Load(missing, true)
	if err != nil || cfg.Listen != Default().Listen {
		t.Fatalf("Load(missing, allowMissing) = %v, %v", cfg, err)
	}
	if _, err := Load(missing, false); err == nil {
		t.Fatal("Load of an explicitly named missing file succeeded")
	}
}

func TestDecodeOverridesAndRuntimes(t *testing.T) {
	cfg := Default()
	err := Decode([]byte(`
log_level = "debug"
default_runtime = "r2"
[cni]
conf_dir = "/tmp/cni"
[runtimes.r1]
path = "/usr/sbin/runc"
[runtimes.r2]
path = "runc"
root = "/run/r2"
`), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "debug" || cfg.CNI.ConfDir != "/tmp/cni" || cfg.CNI.BinDirs[0] != "/opt/cni/bin" {
		t.Fatalf("unexpected cfg %+v", cfg)
	}
	if got := cfg.HandlerNames(); !reflect.DeepEqual(got, []string{"r1", "r2"}) {
		t.Fatalf("handlers = %v, want file's table replacing the default", got)
	}
}

func TestRejects(t *testing.T) {
	cases := []struct {
		name, toml, wantKey string
	}{
		{"unknown top key", `lissen = "/x"`, "lissen"},
		{"unknown nested key", "[cni]\nconfdir = \"/x\"", "cni.confdir"},
		{"wrong type", `shm_size = "big"`, "shm_size"},
		{"bad duration", "[stream]\nidle_timeout = \"forever\"", "idle_timeout"},
		{"relative root", `root = "var/lib"`, "root"},
		{"bad level", `log_level = "loud"`, "log_level"},
		{"bad driver", `cgroup_driver = "cgroupv3"`, "cgroup_driver"},
		{"unknown default runtime", `default_runtime = "kata"`, "default_runtime"},
		{"runtime without path", "[runtimes.runc]\nroot = \"/x\"", "runtimes.runc.path"},
		{"bad handler name", "default_runtime = \"A_B\"\n[runtimes.A_B]\npath = \"runc\"", "runtimes.A_B"},
		{"bad platform", "[registry]\nplatform = \"amd64\"", "registry.platform"},
		{"bad stream address", "[stream]\naddress = \"localhost\"", "stream.address"},
		{"half tls", "[stream]\ntls_cert = \"/c\"", "stream.tls_cert"},
		{"bad metrics", "[metrics]\naddress = \"9090\"", "metrics.address"},
		{"zero shm", "shm_size = 0", "shm_size"},
		{"sandbox image", `sandbox_image = "registry.k8s.io/pause:3.10"`, "sandbox_image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path, false)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("error %q does not name key %q", err, tc.wantKey)
			}
		})
	}
}
