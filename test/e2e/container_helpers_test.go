package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

// Test images, built once per test binary.
var (
	ctrImagesOnce sync.Once
	ctrImages     map[string]*testimage.Built
	ctrImagesErr  error
)

// ctrImageRepos are the images every container test environment has in its
// registry: busybox (root, Cmd sh), nonroot (USER crid) and full
// (Entrypoint /bin/sh -c, Cmd "echo hello; sleep 3600", Env CRID_TEST=1 and
// HOME, WorkingDir /work, USER 1000:1000).
var ctrImageRepos = []string{"busybox", "nonroot", "full"}

func buildCtrImages() (map[string]*testimage.Built, error) {
	ctrImagesOnce.Do(func() {
		ctrImages = map[string]*testimage.Built{}
		for _, name := range ctrImageRepos {
			var b *testimage.Built
			var err error
			switch name {
			case "busybox":
				b, err = testimage.Busybox()
			case "nonroot":
				b, err = testimage.NonRoot("crid")
			case "full":
				b, err = testimage.Full()
			}
			if err != nil {
				ctrImagesErr = fmt.Errorf("build %s: %w", name, err)
				return
			}
			ctrImages[name] = b
		}
	})
	return ctrImages, ctrImagesErr
}

// ctrEnv is a crid with a private network and a registry holding the test
// images.
type ctrEnv struct {
	t      *testing.T
	d      *framework.Daemon
	n      *framework.Network
	reg    *framework.Registry
	pulled map[string]string // repo name -> PullImage's image_ref
}

func newCtrEnv(t *testing.T) *ctrEnv { t.Helper(); return newCtrEnvConfig(t, "") }

// newCtrEnvConfig is newCtrEnv with extra crid config (TOML).
func newCtrEnvConfig(t *testing.T, extraConfig string) *ctrEnv {
	t.Helper()
	images, err := buildCtrImages()
	if err != nil {
		t.Fatal(err)
	}
	reg := framework.StartRegistry(t, "", "")
	for _, name := range ctrImageRepos {
		reg.Push(t, "crid-test/"+name, images[name], "latest")
	}
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir, ExtraConfig: extraConfig})
	return &ctrEnv{t: t, d: d, n: n, reg: reg, pulled: map[string]string{}}
}

// image pulls a test image on first use and returns its tag reference.
func (e *ctrEnv) image(name string) string {
	e.t.Helper()
	ref := e.reg.Host + "/crid-test/" + name + ":latest"
	if _, ok := e.pulled[name]; !ok {
		e.pulled[name] = pull(e.t, e.d, ref, nil)
	}
	return ref
}

// imageID is the image_ref PullImage answered for a test image.
func (e *ctrEnv) imageID(name string) string {
	e.image(name)
	return e.pulled[name]
}

// ctrPod is a running pod sandbox with a log directory.
type ctrPod struct {
	e      *ctrEnv
	id     string
	cfg    *runtime.PodSandboxConfig
	logDir string
	ids    *[]string // containers created in it
}

// pod runs a pod sandbox (mutate may change its config first); it is
// removed when the test ends.
func (e *ctrEnv) pod(name string, mutate func(*runtime.PodSandboxConfig)) *ctrPod {
	e.t.Helper()
	return e.podWithHandler(name, "", mutate)
}

// podWithHandler runs a pod with a runtime handler ("" = the default).
func (e *ctrEnv) podWithHandler(name, handler string, mutate func(*runtime.PodSandboxConfig)) *ctrPod {
	e.t.Helper()
	cfg := podConfig(name)
	// As kubelet does for a pod without shareProcessNamespace (the CRI
	// default would be one PID namespace for the pod).
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
	}}
	cfg.LogDirectory = filepath.Join(e.t.TempDir(), "pods", name)
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil { // kubelet makes it
		e.t.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
	}
	resp, err := e.d.Runtime.RunPodSandbox(ctxT(e.t), &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		e.t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	id := resp.PodSandboxId
	e.t.Cleanup(func() {
		e.d.Runtime.RemovePodSandbox(ctxT(e.t), &runtime.RemovePodSandboxRequest{PodSandboxId: id})
	})
	return &ctrPod{e: e, id: id, cfg: cfg, logDir: cfg.LogDirectory, ids: new([]string)}
}

// ctrConfig is a container config running cmd (nil = the image's), logging
// to <name>.log in the pod's log directory.
func ctrConfig(name, image string, cmd ...string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
	}
}

// secCtx returns cfg's Linux security context, creating it as needed.
func secCtx(cfg *runtime.ContainerConfig) *runtime.LinuxContainerSecurityContext {
	if cfg.Linux == nil {
		cfg.Linux = &runtime.LinuxContainerConfig{}
	}
	if cfg.Linux.SecurityContext == nil {
		cfg.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{}
	}
	return cfg.Linux.SecurityContext
}

// sh is the command line of a busybox shell script.
func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// create creates a container in the pod; it is removed when the test ends.
func (p *ctrPod) create(cfg *runtime.ContainerConfig) string {
	t := p.e.t
	t.Helper()
	id, err := p.tryCreate(cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	return id
}

func (p *ctrPod) tryCreate(cfg *runtime.ContainerConfig) (string, error) {
	t := p.e.t
	// kubelet sends the container the pod's namespace modes.
	if ns := p.cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns != nil && secCtx(cfg).NamespaceOptions == nil {
		cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: ns.Network, Pid: ns.Pid, Ipc: ns.Ipc}
	}
	resp, err := p.e.d.Runtime.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{
		PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg,
	})
	if err != nil {
		return "", err
	}
	id := resp.ContainerId
	*p.ids = append(*p.ids, id)
	t.Cleanup(func() {
		p.e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id})
	})
	return id, nil
}

func (e *ctrEnv) start(id string) {
	e.t.Helper()
	if _, err := e.d.Runtime.StartContainer(ctxT(e.t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		e.t.Fatalf("StartContainer %s: %v", id, err)
	}
}

// run creates and starts a container.
func (p *ctrPod) run(cfg *runtime.ContainerConfig) string {
	p.e.t.Helper()
	id := p.create(cfg)
	p.e.start(id)
	return id
}

// runToExit runs a container to its end and returns its status and its
// log as text (stdout and stderr interleaved, as written).
func (p *ctrPod) runToExit(cfg *runtime.ContainerConfig) (*runtime.ContainerStatus, string) {
	p.e.t.Helper()
	id := p.run(cfg)
	st := p.e.waitExited(id)
	return st, logText(readCRILog(p.e.t, p.logPath(cfg)), "")
}

// output runs a busybox script to its end, fails the test unless it exits
// 0, and returns its log text.
func (p *ctrPod) output(cfg *runtime.ContainerConfig) string {
	p.e.t.Helper()
	st, out := p.runToExit(cfg)
	if st.ExitCode != 0 {
		p.e.t.Fatalf("%s exited %d (%s: %s), log:\n%s", cfg.Metadata.Name, st.ExitCode, st.Reason, st.Message, out)
	}
	return out
}

func (p *ctrPod) logPath(cfg *runtime.ContainerConfig) string {
	return filepath.Join(p.logDir, cfg.LogPath)
}

// ctrInfo is ContainerStatus' verbose info.
type ctrInfo struct {
	Pid            int         `json:"pid"`
	ShimPid        int         `json:"shimPid"`
	RuntimeSpec    *specs.Spec `json:"runtimeSpec"`
	RuntimeHandler string      `json:"runtimeHandler"`
}

func (e *ctrEnv) status(id string) (*runtime.ContainerStatus, ctrInfo) {
	e.t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(ctxT(e.t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		e.t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	var info ctrInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		e.t.Fatalf("ContainerStatus %s: verbose info %q: %v", id, resp.Info["info"], err)
	}
	return resp.Status, info
}

// waitState polls the container's status until it is in state.
func (e *ctrEnv) waitState(id string, state runtime.ContainerState, timeout time.Duration) *runtime.ContainerStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := e.status(id)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s (%s) is %v after %s, want %v", st.Metadata.GetName(), id, st.State, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *ctrEnv) waitExited(id string) *runtime.ContainerStatus {
	e.t.Helper()
	return e.waitState(id, runtime.ContainerState_CONTAINER_EXITED, 30*time.Second)
}

// eventually polls cond every 20ms for up to timeout and reports whether
// it came true.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// logEntry is one line of a CRI container log.
type logEntry struct {
	ts     time.Time
	stream string // stdout or stderr
	tag    string // P (partial) or F (full)
	text   string
}

// parseCRILog parses `<RFC3339Nano> <stdout|stderr> <P|F> <text>` lines.
func parseCRILog(data string) ([]logEntry, error) {
	var out []logEntry
	if data == "" {
		return nil, nil
	}
	if !strings.HasSuffix(data, "\n") {
		return nil, fmt.Errorf("log does not end in a newline: %q", tail(data, 80))
	}
	for i, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: %q is not in CRI log format", i+1, tail(line, 120))
		}
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: timestamp %q: %v", i+1, f[0], err)
		}
		if (f[1] != "stdout" && f[1] != "stderr") || (f[2] != "P" && f[2] != "F") {
			return nil, fmt.Errorf("line %d: %q: bad stream or tag", i+1, tail(line, 120))
		}
		out = append(out, logEntry{ts: ts, stream: f[1], tag: f[2], text: f[3]})
	}
	return out, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func readCRILog(t *testing.T, path string) []logEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("container log: %v", err)
	}
	entries, err := parseCRILog(string(data))
	if err != nil {
		t.Fatalf("container log %s: %v", path, err)
	}
	return entries
}

// logText joins the entries of stream ("" = both) back into the text the
// container wrote: P entries continue a line, F entries end one.
func logText(entries []logEntry, stream string) string {
	var b strings.Builder
	for _, e := range entries {
		if stream != "" && e.stream != stream {
			continue
		}
		b.WriteString(e.text)
		if e.tag == "F" {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// waitLog polls the container log at path until its text contains want.
func waitLog(t *testing.T, path, want string) string {
	t.Helper()
	var text string
	var perr error
	if !eventually(10*time.Second, func() bool {
		data, _ := os.ReadFile(path)
		var entries []logEntry
		if entries, perr = parseCRILog(string(data)); perr != nil {
			return false
		}
		text = logText(entries, "")
		return strings.Contains(text, want)
	}) {
		t.Fatalf("log %s does not show %q within 10s (parse error: %v); it has:\n%s", path, want, perr, tail(text, 2000))
	}
	return text
}

// statusLines returns the lines "Key:\tvalue" of a /proc/self/status dump
// in out as a map.
func statusLines(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// ctrProc is what a running container holds on the host, for leak checks.
type ctrProc struct {
	id           string
	pid, shimPid int
	cgroups      map[string]string
}

// proc records a running container's processes and cgroups.
func (e *ctrEnv) proc(id string) ctrProc {
	e.t.Helper()
	st, info := e.status(id)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING || info.Pid <= 0 || info.ShimPid <= 0 {
		e.t.Fatalf("container %s: state %v pid %d shim %d, want running with both", id, st.State, info.Pid, info.ShimPid)
	}
	cg, err := framework.CgroupDirs(info.Pid)
	if err != nil {
		e.t.Fatalf("cgroups of container %s: %v", id, err)
	}
	return ctrProc{id: id, pid: info.Pid, shimPid: info.ShimPid, cgroups: cg}
}

// assertNoContainerLeftovers checks that no container of this crid
// remains: records, bundle and writable-layer dirs, mounts, shims, the
// processes and cgroups of procs.
func (e *ctrEnv) assertNoContainerLeftovers(procs ...ctrProc) {
	t := e.t
	t.Helper()
	list, err := e.d.Runtime.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Containers {
		t.Errorf("container left: %s (%s) %v", c.Metadata.GetName(), c.Id, c.State)
	}
	bundles, layers := filepath.Join(e.d.State, "containers"), filepath.Join(e.d.Root, "containers")
	for _, dir := range []string{bundles, layers} {
		if left := entries(t, dir); len(left) > 0 {
			t.Errorf("%s left: %v", dir, left)
		}
	}
	if m := framework.MountsBelow(bundles, layers); len(m) > 0 {
		t.Errorf("container mounts left: %v", m)
	}
	ids := []string{e.d.State}
	for _, p := range procs {
		ids = append(ids, p.id)
	}
	// Shims and container processes must be gone when the removal returns;
	// if not, say how much longer they lived.
	live := func() []string {
		shims := framework.ShimProcesses(ids...)
		var out []string
		for _, pid := range shims {
			out = append(out, fmt.Sprintf("crid-shim %d", pid))
		}
		for _, p := range procs {
			if framework.Alive(p.pid) {
				out = append(out, fmt.Sprintf("init %d of %.12s", p.pid, p.id))
			}
			if framework.Alive(p.shimPid) && !slices.Contains(shims, p.shimPid) {
				out = append(out, fmt.Sprintf("crid-shim %d (exiting)", p.shimPid))
			}
		}
		return out
	}
	if left := live(); len(left) > 0 {
		start := time.Now()
		gone := eventually(5*time.Second, func() bool { return len(live()) == 0 })
		t.Errorf("processes left after removal: %v (all gone %v after another %v)", left, gone, time.Since(start).Round(time.Millisecond))
	}
	own, _ := framework.CgroupDirs(e.d.Pid())
	for _, p := range procs {
		for ctl, dir := range p.cgroups {
			if ctl == "name=systemd" || ctl == "unified" || dir == own[ctl] || dir == "/sys/fs/cgroup/"+ctl {
				continue
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("%s cgroup of container %s left: %s", ctl, p.id, dir)
			}
		}
	}
}

// removeAll removes the pod's containers, then the pod, failing the test on
// any error.
func (p *ctrPod) removeAll() {
	t := p.e.t
	t.Helper()
	for _, id := range *p.ids {
		if _, err := p.e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer %s: %v", id, err)
		}
	}
	if _, err := p.e.d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("RemovePodSandbox %s: %v", p.id, err)
	}
}

// in returns the pod bound to t (a subtest): failures and cleanups go there.
func (p *ctrPod) in(t *testing.T) *ctrPod {
	e := *p.e
	e.t = t
	q := *p
	q.e = &e
	return &q
}
