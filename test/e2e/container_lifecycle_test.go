package e2e

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func (e *ctrEnv) stop(id string, timeout int64) {
	e.t.Helper()
	if _, err := e.d.Runtime.StopContainer(ctxT(e.t), &runtime.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
		e.t.Fatalf("StopContainer %s (timeout %d): %v", id, timeout, err)
	}
}

// TestStopContainerGracePeriod: StopContainer sends the stop signal and
// waits up to the timeout: a container that handles SIGTERM (slowly) exits
// with its own code; one that ignores it is killed (137) after the timeout;
// the image's StopSignal is used when it has one.
func TestStopContainerGracePeriod(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("stop", nil)
	busybox := e.image("busybox")
	loop := `echo ready; while true; do sleep 0.1; done`
	for _, tc := range []struct {
		name, image, script string
		timeout             int64
		code                int32
		log                 string
	}{
		// The handler takes a second: killing at once would give 137.
		{"graceful", busybox, `trap 'sleep 1; echo cleaned-up; exit 42' TERM; ` + loop, 30, 42, "cleaned-up\n"},
		{"stubborn", busybox, `trap 'echo term-ignored' TERM; ` + loop, 2, 137, "term-ignored\n"},
		{"no-grace", busybox, loop, 0, 137, "ready\n"},
		// crid-test/full has StopSignal SIGUSR1.
		{"image-stop-signal", e.image("full"), `trap 'echo got-usr1; exit 7' USR1; ` + loop, 30, 7, "got-usr1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := p.in(t)
			cfg := ctrConfig(tc.name, tc.image, sh(tc.script)...)
			id := p.run(cfg)
			waitLog(t, p.logPath(cfg), "ready\n")
			p.e.stop(id, tc.timeout)
			st, _ := p.e.status(id)
			if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != tc.code {
				t.Fatalf("after StopContainer: %v exit %d, want exited %d", st.State, st.ExitCode, tc.code)
			}
			if out := logText(readCRILog(t, p.logPath(cfg)), ""); !strings.Contains(out, tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, out)
			}
			p.e.stop(id, 10) // idempotent
		})
	}

	// Stopping a container that never started succeeds; so does removing a
	// running one, which kills it.
	created := p.create(ctrConfig("created", busybox, "/bin/sleep", "3600"))
	e.stop(created, 10)
	running := p.run(ctrConfig("running", busybox, "/bin/sleep", "3600"))
	proc := e.proc(running)
	for range 2 { // RemoveContainer is idempotent
		if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: running}); err != nil {
			t.Fatalf("RemoveContainer of a running container: %v", err)
		}
	}
	if _, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: running}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a removed container: %v, want NotFound", err)
	}
	p.removeAll()
	e.assertNoContainerLeftovers(proc)
}

// TestContainerNameConflict: a second container of the same name and
// attempt in a pod is AlreadyExists; another attempt, another pod, or the
// name after removal are fine. Bad requests are refused.
func TestContainerNameConflict(t *testing.T) {
	e := newCtrEnv(t)
	p, q := e.pod("names", nil), e.pod("names2", nil)
	busybox := e.image("busybox")
	cfg := ctrConfig("dup", busybox, "/bin/true")
	first := p.create(cfg)
	_, err := p.tryCreate(cfg)
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second container named dup: %v, want AlreadyExists", err)
	}
	if !strings.Contains(err.Error(), first) {
		t.Errorf("AlreadyExists error does not name the existing container %s: %v", first, err)
	}
	again := ctrConfig("dup", busybox, "/bin/true")
	again.Metadata.Attempt = 1
	p.create(again)
	q.create(cfg)
	if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: first}); err != nil {
		t.Fatal(err)
	}
	p.create(cfg)

	noMeta := ctrConfig("x", busybox, "/bin/true")
	noMeta.Metadata = nil
	unpulled := ctrConfig("unpulled", e.reg.Host+"/crid-test/never-pulled:latest", "/bin/true")
	for _, tc := range []struct {
		name string
		pod  string
		cfg  *runtime.ContainerConfig
		code codes.Code
	}{
		{"no metadata", p.id, noMeta, codes.InvalidArgument},
		{"unknown pod", strings.Repeat("0", 64), ctrConfig("orphan", busybox, "/bin/true"), codes.NotFound},
		{"image not pulled", p.id, unpulled, codes.NotFound},
	} {
		_, err := e.d.Runtime.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: tc.pod, Config: tc.cfg, SandboxConfig: p.cfg})
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	// A stopped pod takes no new containers.
	if _, err := e.d.Runtime.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: q.id}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.tryCreate(ctrConfig("late", busybox, "/bin/true")); err == nil {
		t.Errorf("CreateContainer in a stopped pod succeeded")
	}
	p.removeAll()
	q.removeAll()
	e.assertNoContainerLeftovers()
}

// TestContainerStatusFields checks what ContainerStatus reports through a
// container's life, for a container created the way kubelet does it (image
// by ID, the user's reference in user_specified_image).
func TestContainerStatusFields(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("status", nil)
	tag, imageID := e.image("busybox"), e.imageID("busybox")
	cfg := ctrConfig("inspect", imageID, "/bin/sleep", "3600")
	cfg.Image.UserSpecifiedImage = tag
	cfg.Metadata.Attempt = 2
	cfg.Labels = map[string]string{"app": "inspect", "io.kubernetes.container.name": "inspect"}
	cfg.Annotations = map[string]string{"note": "kept as given", "empty": ""}
	cfg.Mounts = []*runtime.Mount{{ContainerPath: "/host", HostPath: t.TempDir(), Readonly: true}}
	id := p.create(cfg)

	st, info := e.status(id)
	if st.Id != id || st.Metadata.GetName() != "inspect" || st.Metadata.GetAttempt() != 2 {
		t.Errorf("id %s metadata %v", st.Id, st.Metadata)
	}
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 || st.FinishedAt != 0 {
		t.Errorf("created: state %v created %d started %d finished %d", st.State, st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	if st.Image.GetImage() == "" || st.Image.GetUserSpecifiedImage() != tag {
		t.Errorf("image %v, want user_specified_image %s", st.Image, tag)
	}
	if st.ImageRef != imageID && !strings.Contains(st.ImageRef, "@sha256:") {
		t.Errorf("image_ref %q is not a digested reference", st.ImageRef)
	}
	if st.ImageId != imageID {
		t.Errorf("image_id %q, want PullImage's image_ref %s", st.ImageId, imageID)
	}
	if !mapsEqual(st.Labels, cfg.Labels) || !mapsEqual(st.Annotations, cfg.Annotations) {
		t.Errorf("labels %v annotations %v, want %v %v", st.Labels, st.Annotations, cfg.Labels, cfg.Annotations)
	}
	if want := p.logPath(cfg); st.LogPath != want {
		t.Errorf("log_path %q, want %q", st.LogPath, want)
	}
	if m := findMount(st.Mounts, "/host"); m == nil || m.HostPath != cfg.Mounts[0].HostPath || !m.Readonly {
		t.Errorf("mounts %v, want them to hold %v", st.Mounts, cfg.Mounts)
	}
	if info.RuntimeSpec == nil || !slices.Equal(info.RuntimeSpec.Process.Args, cfg.Command) || info.RuntimeHandler != "runc" {
		t.Errorf("verbose info: spec %v handler %q", info.RuntimeSpec != nil, info.RuntimeHandler)
	}

	e.start(id)
	st, _ = e.status(id)
	proc := e.proc(id)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt < st.CreatedAt || st.FinishedAt != 0 {
		t.Errorf("running: state %v created %d started %d finished %d", st.State, st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", proc.pid))
	if string(cmdline) != "/bin/sleep\x003600\x00" {
		t.Errorf("verbose pid %d runs %q, not the container's command", proc.pid, cmdline)
	}
	if shims := framework.ShimProcesses(id); !slices.Equal(shims, []int{proc.shimPid}) {
		t.Errorf("crid-shim processes for %s: %v, verbose shimPid %d", id, shims, proc.shimPid)
	}
	if ppid := parentPid(t, proc.pid); ppid != proc.shimPid {
		t.Errorf("container init's parent is %d, want its shim %d", ppid, proc.shimPid)
	}

	e.stop(id, 0)
	st, _ = e.status(id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.FinishedAt < st.StartedAt || st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("exited: state %v started %d finished %d exit %d reason %q", st.State, st.StartedAt, st.FinishedAt, st.ExitCode, st.Reason)
	}
	_, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: strings.Repeat("a", 64)})
	if status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown container: %v, want NotFound", err)
	}
	p.removeAll()
	e.assertNoContainerLeftovers(proc)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func parentPid(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ppid int
	fmt.Sscan(statusLines(string(data))["PPid"], &ppid)
	return ppid
}

// TestListContainersFilters: ListContainers (and StreamContainers) by id
// prefix, state, pod and labels, ANDed.
func TestListContainersFilters(t *testing.T) {
	e := newCtrEnv(t)
	a, b := e.pod("lista", nil), e.pod("listb", nil)
	busybox := e.image("busybox")
	withLabels := func(cfg *runtime.ContainerConfig, tier string) *runtime.ContainerConfig {
		cfg.Labels = map[string]string{"tier": tier, "suite": "list"}
		cfg.Annotations = map[string]string{"a": tier}
		return cfg
	}
	a1 := a.run(withLabels(ctrConfig("a1", busybox, "/bin/sleep", "3600"), "web"))
	a2 := a.create(withLabels(ctrConfig("a2", busybox, "/bin/true"), "db"))
	b1 := b.run(withLabels(ctrConfig("b1", busybox, "/bin/true"), "web"))
	e.waitExited(b1)
	state := func(s runtime.ContainerState) *runtime.ContainerStateValue {
		return &runtime.ContainerStateValue{State: s}
	}
	for _, tc := range []struct {
		name   string
		filter *runtime.ContainerFilter
		want   []string
	}{
		{"all", nil, []string{a1, a2, b1}},
		{"id", &runtime.ContainerFilter{Id: a2}, []string{a2}},
		{"id prefix", &runtime.ContainerFilter{Id: b1[:12]}, []string{b1}},
		{"unknown id", &runtime.ContainerFilter{Id: "ffffffffffff"}, nil},
		{"running", &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_RUNNING)}, []string{a1}},
		{"created", &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_CREATED)}, []string{a2}},
		{"exited", &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_EXITED)}, []string{b1}},
		{"pod", &runtime.ContainerFilter{PodSandboxId: a.id}, []string{a1, a2}},
		{"pod prefix", &runtime.ContainerFilter{PodSandboxId: b.id[:12]}, []string{b1}},
		{"label", &runtime.ContainerFilter{LabelSelector: map[string]string{"tier": "web"}}, []string{a1, b1}},
		{"labels ANDed", &runtime.ContainerFilter{LabelSelector: map[string]string{"tier": "web", "suite": "other"}}, nil},
		{"label and pod", &runtime.ContainerFilter{PodSandboxId: b.id, LabelSelector: map[string]string{"tier": "web"}}, []string{b1}},
		{"id and wrong state", &runtime.ContainerFilter{Id: a1, State: state(runtime.ContainerState_CONTAINER_EXITED)}, nil},
	} {
		resp, err := e.d.Runtime.ListContainers(ctxT(t), &runtime.ListContainersRequest{Filter: tc.filter})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, c := range resp.Containers {
			got = append(got, c.Id)
		}
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("filter %s: got %v, want %v", tc.name, got, want)
		}
	}

	resp, err := e.d.Runtime.ListContainers(ctxT(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: a1}})
	if err != nil || len(resp.Containers) != 1 {
		t.Fatalf("list a1: %v %v", resp, err)
	}
	c := resp.Containers[0]
	if c.PodSandboxId != a.id || c.Metadata.GetName() != "a1" || c.Image.GetImage() != busybox || c.ImageRef == "" ||
		c.State != runtime.ContainerState_CONTAINER_RUNNING || c.CreatedAt == 0 || c.Labels["tier"] != "web" || c.Annotations["a"] != "web" {
		t.Errorf("listed container = %v", c)
	}
	if c.ImageId != e.imageID("busybox") {
		t.Errorf("listed image_id %q, want %s", c.ImageId, e.imageID("busybox"))
	}

	stream, err := e.d.Runtime.StreamContainers(ctxT(t), &runtime.StreamContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"tier": "web"}}})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []string
	for {
		r, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				t.Errorf("StreamContainers: %v", err)
			}
			break
		}
		for _, c := range r.Containers {
			streamed = append(streamed, c.Id)
		}
	}
	slices.Sort(streamed)
	want := []string{a1, b1}
	slices.Sort(want)
	if !slices.Equal(streamed, want) {
		t.Errorf("StreamContainers by label sent %v, want %v", streamed, want)
	}
}

// TestPodStopAndRemoveTakeItsContainers: StopPodSandbox kills a pod's
// running containers (their status stays); RemovePodSandbox removes every
// container of the pod, also without a Stop first; nothing is left.
func TestPodStopAndRemoveTakeItsContainers(t *testing.T) {
	e := newCtrEnv(t)
	busybox := e.image("busybox")
	var procs []ctrProc
	var all []string
	for _, stopFirst := range []bool{true, false} {
		p := e.pod(fmt.Sprintf("pod-%v", stopFirst), nil)
		running := p.run(ctrConfig("running", busybox, "/bin/sleep", "3600"))
		exited := p.run(ctrConfig("exited", busybox, "/bin/true"))
		created := p.create(ctrConfig("created", busybox, "/bin/true"))
		e.waitExited(exited)
		proc := e.proc(running)
		procs = append(procs, proc)
		all = append(all, running, exited, created)
		if stopFirst {
			if _, err := e.d.Runtime.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
				t.Fatal(err)
			}
			if st, _ := e.status(running); st.State != runtime.ContainerState_CONTAINER_EXITED {
				t.Errorf("after StopPodSandbox its running container is %v", st.State)
			}
			if framework.Alive(proc.pid) {
				t.Errorf("after StopPodSandbox the container's process %d lives", proc.pid)
			}
		}
		if _, err := e.d.Runtime.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range all {
		if _, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
			t.Errorf("container %s after RemovePodSandbox: %v, want NotFound", id, err)
		}
	}
	e.assertNoContainerLeftovers(procs...)
	assertNoPodLeftovers(t, e.d, e.n)
}
