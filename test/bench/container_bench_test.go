package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

const benchContainers = 20

// busyboxDaemon is a crid with a CNI network that has pulled the busybox
// test image from a local registry; it returns the image's reference.
func busyboxDaemon(b *testing.B) (*framework.Daemon, string) {
	img, err := testimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	reg := framework.StartRegistry(b, "", "")
	reg.Push(b, "crid-test/busybox", img, "latest")
	n := framework.NewNetwork(b, "")
	d := framework.Start(b, framework.Options{CNIConfDir: n.ConfDir})
	ref := reg.Host + "/crid-test/busybox:latest"
	if _, err := d.Image.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		b.Fatal(err)
	}
	return d, ref
}

// BenchmarkContainer reports, over 20 busybox `sleep 3600` containers in
// one pod, CreateContainer+StartContainer and StopContainer+RemoveContainer
// latency and the shim's memory per running container, beside the floor
// measured in the same run: runc create+start and delete -f (and, as
// delete -f polls, kill+wait+delete), done directly, of the bundle crid
// wrote (its config.json on a fresh overlay of the same image, own cgroup,
// private runc --root).
func BenchmarkContainer(b *testing.B) {
	d, ref := busyboxDaemon(b)
	lower := snapshotDirs(b, d, ref)

	pods := &benchPod{d: d, live: map[string]bool{}}
	pods.run(b, ref)
	b.Cleanup(pods.cleanup) // runs before the daemon stops: containers outlive crid

	// One container first, not counted: it warms crid, runc and the page
	// cache for both sides, and lends its config.json to the floor. It
	// lives to the end, so every path that config names stays.
	tmpl, _, _ := pods.createStart(b, "warmup")
	spec, err := os.ReadFile(filepath.Join(d.State, "containers", tmpl, "config.json"))
	if err != nil {
		b.Fatalf("crid's bundle of container %s: %v", tmpl, err)
	}
	floor := runcFloor(b, spec, lower, benchContainers, false)
	floorKill := runcFloor(b, spec, lower, benchContainers, true).down

	var up, create, start, down []time.Duration
	var ids []string
	b.ResetTimer()
	for i := range benchContainers {
		t0 := time.Now()
		id, c, s := pods.createStart(b, fmt.Sprintf("c%02d", i))
		up = append(up, time.Since(t0))
		create, start, ids = append(create, c), append(start, s), append(ids, id)
	}
	b.StopTimer()
	pss, rss := shimMemory(b, d, ids)
	b.StartTimer()
	for _, id := range ids {
		t0 := time.Now()
		pods.stopRemove(b, id)
		down = append(down, time.Since(t0))
	}
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(up)), "create+start-median-ms")
	b.ReportMetric(ms(p90(up)), "create+start-p90-ms")
	b.ReportMetric(ms(median(floor.up)), "floor-create+start-median-ms")
	b.ReportMetric(ms(p90(floor.up)), "floor-create+start-p90-ms")
	b.ReportMetric(ms(median(down)), "stop+rm-median-ms")
	b.ReportMetric(ms(p90(down)), "stop+rm-p90-ms")
	b.ReportMetric(ms(median(floor.down)), "floor-delete-f-median-ms")
	b.ReportMetric(ms(p90(floor.down)), "floor-delete-f-p90-ms")
	b.ReportMetric(ms(median(floorKill)), "floor-kill+delete-median-ms")
	b.ReportMetric(ms(p90(floorKill)), "floor-kill+delete-p90-ms")
	b.ReportMetric(float64(medianInt(pss)), "shim-PSS-median-KiB")
	b.ReportMetric(float64(medianInt(rss)), "shim-RSS-median-KiB")
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	b.Logf("Create+StartContainer (%d containers): median %v p90 %v (create %v, start %v) | floor runc create+start: median %v p90 %v (create %v, start %v)",
		len(up), r(median(up)), r(p90(up)), r(median(create)), r(median(start)),
		r(median(floor.up)), r(p90(floor.up)), r(median(floor.create)), r(median(floor.start)))
	b.Logf("Stop(timeout 0)+RemoveContainer: median %v p90 %v | floor runc delete -f: median %v p90 %v; runc kill KILL + pidfd wait + runc delete: median %v p90 %v",
		r(median(down)), r(p90(down)), r(median(floor.down)), r(p90(floor.down)), r(median(floorKill)), r(p90(floorKill)))
	b.Logf("shim memory per running container (%d shims, /proc/PID/smaps_rollup): PSS median %d KiB (p90 %d), RSS median %d KiB (p90 %d); PSS splits shared pages among the processes that map them",
		len(pss), medianInt(pss), p90Int(pss), medianInt(rss), p90Int(rss))
}

// benchPod is the one pod of the benchmark and the containers in it.
type benchPod struct {
	d      *framework.Daemon
	id     string
	cfg    *runtime.PodSandboxConfig
	image  string
	live   map[string]bool // created and not yet removed
	podRun bool
}

func (p *benchPod) run(b *testing.B, image string) {
	b.Helper()
	logs := filepath.Join(p.d.Base, "pod-logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		b.Fatal(err)
	}
	p.image = image
	p.cfg = &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "bench", Namespace: "bench", Uid: "bench-uid"},
		Hostname:     "bench",
		LogDirectory: logs,
	}
	resp, err := p.d.Runtime.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: p.cfg})
	if err != nil {
		b.Fatal(err)
	}
	p.id, p.podRun = resp.PodSandboxId, true
}

// createStart creates and starts container name running `sleep 3600` and
// returns its id and the time each call took.
func (p *benchPod) createStart(b *testing.B, name string) (string, time.Duration, time.Duration) {
	b.Helper()
	ctx := context.Background()
	t0 := time.Now()
	resp, err := p.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name},
			Image:    &runtime.ImageSpec{Image: p.image},
			Command:  []string{"sleep", "3600"},
			LogPath:  name + ".log",
		},
		SandboxConfig: p.cfg,
	})
	if err != nil {
		b.Fatalf("CreateContainer %s: %v", name, err)
	}
	t1 := time.Now()
	p.live[resp.ContainerId] = true
	if _, err := p.d.Runtime.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		b.Fatalf("StartContainer %s: %v", name, err)
	}
	return resp.ContainerId, t1.Sub(t0), time.Since(t1)
}

// stopRemove stops container id (timeout 0: SIGKILL at once, as runc
// delete -f does; busybox sleep as pid 1 ignores SIGTERM) and removes it.
func (p *benchPod) stopRemove(b testing.TB, id string) {
	b.Helper()
	ctx := context.Background()
	if _, err := p.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		b.Fatalf("StopContainer %s: %v", id, err)
	}
	if _, err := p.d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		b.Fatalf("RemoveContainer %s: %v", id, err)
	}
	delete(p.live, id)
}

// cleanup removes what is left of the containers and the pod, also after
// a failure.
func (p *benchPod) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for id := range p.live {
		p.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id})
		if _, err := p.d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			fmt.Fprintf(os.Stderr, "bench cleanup: remove container %s: %v\n", id, err)
		}
	}
	if !p.podRun {
		return
	}
	p.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id})
	if _, err := p.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		fmt.Fprintf(os.Stderr, "bench cleanup: remove pod %s: %v\n", p.id, err)
	}
}

// shimMemory checks that every container runs and returns the PSS and RSS
// (KiB) of its shim, found through ContainerStatus's verbose shimPid (or,
// without one, by its command line) and checked against its command line.
func shimMemory(b *testing.B, d *framework.Daemon, ids []string) (pss, rss []int64) {
	b.Helper()
	for _, id := range ids {
		st, err := d.Runtime.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			b.Fatal(err)
		}
		if s := st.GetStatus().GetState(); s != runtime.ContainerState_CONTAINER_RUNNING {
			b.Fatalf("container %s is %v, not running", id, s)
		}
		var info struct {
			ShimPid int `json:"shimPid"`
		}
		if raw := st.Info["info"]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &info); err != nil {
				b.Fatalf("verbose info of %s: %v", id, err)
			}
		}
		pid, err := shimProcess(id, info.ShimPid)
		if err != nil {
			b.Fatal(err)
		}
		ps, rs, err := smapsRollup(pid)
		if err != nil {
			b.Fatal(err)
		}
		pss, rss = append(pss, ps), append(rss, rs)
	}
	return pss, rss
}

func snapshotDirs(b *testing.B, d *framework.Daemon, ref string) []string {
	b.Helper()
	st, err := d.Image.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}, Verbose: true})
	if err != nil {
		b.Fatal(err)
	}
	var info struct {
		SnapshotDirs []string `json:"snapshotDirs"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || len(info.SnapshotDirs) == 0 {
		b.Fatalf("snapshot dirs of %s from %q: %v", ref, st.Info["info"], err)
	}
	return info.SnapshotDirs
}

func medianInt(v []int64) int64 { return sortedInt(v)[len(v)/2] }
func p90Int(v []int64) int64    { return sortedInt(v)[len(v)*9/10] }

func sortedInt(v []int64) []int64 {
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}
