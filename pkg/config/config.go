// Package config holds crid's configuration: one documented struct with
// defaults, loaded from TOML, validated at start and printable as a template.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// DefaultPath is where crid looks for its config file when --config is not given.
const DefaultPath = "/etc/crid/config.toml"

// Config is crid's whole configuration. The TOML keys are documented in
// DefaultTOML; keep the two in step.
type Config struct {
	Listen         string             `toml:"listen" json:"listen"`
	Root           string             `toml:"root" json:"root"`
	State          string             `toml:"state" json:"state"`
	LogLevel       string             `toml:"log_level" json:"log_level"`
	CgroupDriver   string             `toml:"cgroup_driver" json:"cgroup_driver"`
	DefaultRuntime string             `toml:"default_runtime" json:"default_runtime"`
	SandboxImage   string             `toml:"sandbox_image" json:"sandbox_image"`
	ShmSize        int64              `toml:"shm_size" json:"shm_size"`
	Registry       Registry           `toml:"registry" json:"registry"`
	CNI            CNI                `toml:"cni" json:"cni"`
	Stream         Stream             `toml:"stream" json:"stream"`
	Metrics        Metrics            `toml:"metrics" json:"metrics"`
	Runtimes       map[string]Runtime `toml:"runtimes" json:"runtimes"`
}

// Registry configures image pulls.
type Registry struct {
	ConfigPath     string `toml:"config_path" json:"config_path"`
	Platform       string `toml:"platform" json:"platform"`
	MaxConcurrency int    `toml:"max_concurrent_downloads" json:"max_concurrent_downloads"`
}

// CNI configures pod networking.
type CNI struct {
	ConfDir string   `toml:"conf_dir" json:"conf_dir"`
	BinDirs []string `toml:"bin_dirs" json:"bin_dirs"`
}

// Stream configures the exec/attach/port-forward streaming server.
type Stream struct {
	Address     string   `toml:"address" json:"address"`
	Port        int      `toml:"port" json:"port"`
	TLSCert     string   `toml:"tls_cert" json:"tls_cert"`
	TLSKey      string   `toml:"tls_key" json:"tls_key"`
	IdleTimeout Duration `toml:"idle_timeout" json:"idle_timeout"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Address string `toml:"address" json:"address"`
}

// Runtime is one OCI runtime handler (RuntimeClass).
type Runtime struct {
	Path          string `toml:"path" json:"path"`
	Root          string `toml:"root" json:"root"`
	SystemdCgroup bool   `toml:"systemd_cgroup" json:"systemd_cgroup"`
}

// Duration is a time.Duration written as a Go duration string ("4h", "30s").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns the configuration crid runs with when nothing is set.
func Default() *Config {
	return &Config{
		Listen:         "/run/crid/crid.sock",
		Root:           "/var/lib/crid",
		State:          "/run/crid",
		LogLevel:       "info",
		CgroupDriver:   "cgroupfs",
		DefaultRuntime: "runc",
		ShmSize:        64 << 20,
		Registry: Registry{
			ConfigPath:     "/etc/crid/certs.d",
			Platform:       "linux/amd64",
			MaxConcurrency: 4,
		},
		CNI: CNI{
			ConfDir: "/etc/cni/net.d",
			BinDirs: []string{"/opt/cni/bin", "/usr/lib/cni"},
		},
		Stream: Stream{Address: "127.0.0.1", IdleTimeout: Duration{4 * time.Hour}},
		Runtimes: map[string]Runtime{
			"runc": {Path: "runc"},
		},
	}
}

// Load reads the TOML file at path over the defaults. A missing file is an
// error unless allowMissing is set (the default path may be absent).
func Load(path string, allowMissing bool) (*Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && allowMissing {
			return cfg, nil
		}
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := Decode(data, cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Decode parses TOML into cfg, rejecting keys crid does not know.
func Decode(data []byte, cfg *Config) error {
	// The file's [runtimes] replaces the default table rather than merging into it.
	if bytes.Contains(data, []byte("[runtimes")) {
		cfg.Runtimes = nil
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			keys := make([]string, 0, len(strict.Errors))
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return fmt.Errorf("unknown key(s) %s: %w", strings.Join(keys, ", "), errdefs.ErrInvalidArgument)
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("line %d column %d: key %s: %s: %w", row, col, strings.Join(de.Key(), "."), de.Error(), errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config key %s: %s: %w", key, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	for key, p := range map[string]string{"listen": c.Listen, "root": c.Root, "state": c.State} {
		if !filepath.IsAbs(p) {
			return bad(key, "%q must be an absolute path", p)
		}
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return bad("log_level", "%v", err)
	}
	if c.CgroupDriver != "cgroupfs" && c.CgroupDriver != "systemd" {
		return bad("cgroup_driver", "%q is not one of cgroupfs, systemd", c.CgroupDriver)
	}
	if c.SandboxImage != "" {
		// Pods run crid's built-in infra process; running the infra from an
		// image is not built yet, and silently ignoring the key would mislead.
		return bad("sandbox_image", "%q: pod infra from an image is not supported yet; leave it empty for the built-in infra process", c.SandboxImage)
	}
	if c.ShmSize <= 0 {
		return bad("shm_size", "%d must be a positive number of bytes", c.ShmSize)
	}
	if len(c.Runtimes) == 0 {
		return bad("runtimes", "at least one runtime handler is required")
	}
	for name, rt := range c.Runtimes {
		if !handlerName.MatchString(name) {
			return bad("runtimes."+name, "handler name must be a DNS label")
		}
		if rt.Path == "" {
			return bad("runtimes."+name+".path", "must name the runtime binary")
		}
		if rt.Root != "" && !filepath.IsAbs(rt.Root) {
			return bad("runtimes."+name+".root", "%q must be an absolute path", rt.Root)
		}
	}
	if _, ok := c.Runtimes[c.DefaultRuntime]; !ok {
		return bad("default_runtime", "%q is not a configured handler (have %s)", c.DefaultRuntime, strings.Join(c.HandlerNames(), ", "))
	}
	if c.Registry.ConfigPath != "" && !filepath.IsAbs(c.Registry.ConfigPath) {
		return bad("registry.config_path", "%q must be an absolute path", c.Registry.ConfigPath)
	}
	if parts := strings.Split(c.Registry.Platform, "/"); len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return bad("registry.platform", "%q must be os/arch[/variant]", c.Registry.Platform)
	}
	if c.Registry.MaxConcurrency < 1 || c.Registry.MaxConcurrency > 64 {
		return bad("registry.max_concurrent_downloads", "%d must be between 1 and 64", c.Registry.MaxConcurrency)
	}
	if c.CNI.ConfDir == "" || !filepath.IsAbs(c.CNI.ConfDir) {
		return bad("cni.conf_dir", "%q must be an absolute path", c.CNI.ConfDir)
	}
	if len(c.CNI.BinDirs) == 0 {
		return bad("cni.bin_dirs", "at least one plugin directory is required")
	}
	if net.ParseIP(c.Stream.Address) == nil {
		return bad("stream.address", "%q is not an IP address", c.Stream.Address)
	}
	if c.Stream.Port < 0 || c.Stream.Port > 65535 {
		return bad("stream.port", "%d is not a port", c.Stream.Port)
	}
	if (c.Stream.TLSCert == "") != (c.Stream.TLSKey == "") {
		return bad("stream.tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.Metrics.Address != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Address); err != nil {
			return bad("metrics.address", "%q is not host:port: %v", c.Metrics.Address, err)
		}
	}
	return nil
}

// HandlerNames returns the configured runtime handlers, sorted.
func (c *Config) HandlerNames() []string {
	names := make([]string, 0, len(c.Runtimes))
	for n := range c.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseLogLevel maps debug, info, warn and error to slog levels.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (use debug, info, warn or error)", s)
	}
	return l, nil
}
