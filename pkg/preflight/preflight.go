// Package preflight checks that a node can run crid: OCI runtimes, overlay,
// cgroups, CNI and forwarding. `crid check` prints its findings.
package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/sysinfo"
)

// Finding is the outcome of one check.
type Finding struct {
	Name   string
	OK     bool
	Detail string
	Hint   string // how to fix it, when not OK
}

// Run performs every check against cfg.
func Run(ctx context.Context, cfg *config.Config) []Finding {
	var out []Finding
	for _, name := range cfg.HandlerNames() {
		out = append(out, checkRuntime(ctx, name, cfg.Runtimes[name]))
	}
	out = append(out, checkShim())
	out = append(out, checkOverlay(cfg.Root))
	out = append(out, checkCgroups(cfg.CgroupDriver))
	out = append(out, checkCNI(cfg.CNI.ConfDir, cfg.CNI.BinDirs)...)
	out = append(out, checkForwarding())
	out = append(out, checkCapSysResource())
	return out
}

// Print writes one line per finding and reports whether all passed.
func Print(w io.Writer, findings []Finding) bool {
	allOK := true
	for _, f := range findings {
		mark := "OK  "
		if !f.OK {
			mark, allOK = "FAIL", false
		}
		fmt.Fprintf(w, "%s %-22s %s\n", mark, f.Name, f.Detail)
		if !f.OK && f.Hint != "" {
			fmt.Fprintf(w, "     %-22s hint: %s\n", "", f.Hint)
		}
	}
	return allOK
}

func checkRuntime(ctx context.Context, name string, rt config.Runtime) Finding {
	f := Finding{Name: "runtime " + name}
	path, err := exec.LookPath(rt.Path)
	if err != nil {
		f.Detail = fmt.Sprintf("%q not found in PATH", rt.Path)
		f.Hint = fmt.Sprintf("install it (apt-get install %s) or set runtimes.%s.path", filepath.Base(rt.Path), name)
		return f
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	outb, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		f.Detail = fmt.Sprintf("%s --version failed: %v: %s", path, err, firstLine(string(outb)))
		f.Hint = "reinstall the runtime binary"
		return f
	}
	if problem := sysinfo.RuntimeHostProblem(path); problem != "" {
		f.Detail = fmt.Sprintf("%s (%s): %s", firstLine(string(outb)), path, problem)
		f.Hint = fmt.Sprintf("use runc for runtimes.%s, or a host with cgroup v2 only (systemd.unified_cgroup_hierarchy=1)", name)
		return f
	}
	f.OK, f.Detail = true, fmt.Sprintf("%s (%s)", firstLine(string(outb)), path)
	return f
}

// checkShim finds crid-shim next to crid; without it each container's shim
// is crid itself, which works but costs more memory per container.
func checkShim() Finding {
	f := Finding{Name: "shim", OK: true}
	exe, err := os.Executable()
	if err != nil {
		f.Detail = "crid's own path is unknown; containers use `crid shim`"
		return f
	}
	p := filepath.Join(filepath.Dir(exe), "crid-shim")
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		f.Detail = p
		return f
	}
	f.Detail = fmt.Sprintf("no %s: containers use `crid shim` (about 3x the memory per container; `make install` puts crid-shim there)", p)
	return f
}

func checkCNI(confDir string, binDirs []string) []Finding {
	conf := Finding{Name: "cni config"}
	file, types, err := firstCNIConfig(confDir)
	if err != nil {
		conf.Detail = err.Error()
		conf.Hint = "write a network config there (hack/install-deps.sh writes a bridge network) or set cni.conf_dir"
		return []Finding{conf}
	}
	conf.OK, conf.Detail = true, fmt.Sprintf("%s (plugins %s)", file, strings.Join(types, ", "))
	plugins := Finding{Name: "cni plugins", OK: true, Detail: "all found in " + strings.Join(binDirs, ":")}
	var missing []string
	for _, t := range types {
		if !inAnyDir(t, binDirs) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		plugins.OK = false
		plugins.Detail = fmt.Sprintf("missing %s in %s", strings.Join(missing, ", "), strings.Join(binDirs, ":"))
		plugins.Hint = "apt-get install containernetworking-plugins, or add their directory to cni.bin_dirs"
	}
	return []Finding{conf, plugins}
}

// firstCNIConfig finds the config crid will load and the plugin types it uses.
func firstCNIConfig(dir string) (string, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "", nil, fmt.Errorf("no network config (.conf, .conflist, .json) in %s", dir)
	}
	path := filepath.Join(dir, names[0])
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	var conf struct {
		Type    string `json:"type"`
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return "", nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var types []string
	if conf.Type != "" {
		types = append(types, conf.Type)
	}
	for _, p := range conf.Plugins {
		types = append(types, p.Type)
	}
	if len(types) == 0 {
		return "", nil, fmt.Errorf("%s names no plugin type", path)
	}
	return path, types, nil
}

func inAnyDir(name string, dirs []string) bool {
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

func checkForwarding() Finding {
	f := Finding{Name: "ipv4 forwarding"}
	v, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		f.Detail = err.Error()
		return f
	}
	if strings.TrimSpace(string(v)) != "1" {
		f.Detail = "net.ipv4.ip_forward = 0: pods cannot reach beyond the node"
		f.Hint = "sysctl -w net.ipv4.ip_forward=1 (and persist it in /etc/sysctl.d)"
		return f
	}
	f.OK, f.Detail = true, "net.ipv4.ip_forward = 1"
	return f
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
