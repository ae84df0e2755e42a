package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/test/framework"
)

const benchPods = 20

// BenchmarkPodSandbox reports RunPodSandbox and Stop+Remove latency over
// 20 pods beside the floor measured in the same run: a pinned netns plus
// the same CNI ADD, and DEL plus unpin, done directly.
func BenchmarkPodSandbox(b *testing.B) {
	n := framework.NewNetwork(b, "")
	ctx := context.Background()

	// Floor first, on the same network config.
	mgr, err := netns.NewManager(n.ConfDir, []string{"/usr/lib/cni", "/opt/cni/bin"}, filepath.Join(b.TempDir(), "cache"))
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.Reload(); err != nil {
		b.Fatal(err)
	}
	pins := b.TempDir()
	var floorUp, floorDown []time.Duration
	for i := range benchPods {
		id := fmt.Sprintf("floor%02d", i)
		start := time.Now()
		ns, err := netns.New(pins, id)
		if err != nil {
			b.Fatal(err)
		}
		pn := netns.PodNetwork{ID: id, NetNSPath: ns.Path(), PodName: id, PodNamespace: "bench", PodUID: id}
		if _, err := mgr.Setup(ctx, pn); err != nil {
			b.Fatal(err)
		}
		floorUp = append(floorUp, time.Since(start))
		start = time.Now()
		if err := mgr.Teardown(ctx, pn); err != nil {
			b.Fatal(err)
		}
		if err := ns.Remove(); err != nil {
			b.Fatal(err)
		}
		floorDown = append(floorDown, time.Since(start))
	}

	d := framework.Start(b, framework.Options{CNIConfDir: n.ConfDir})
	var run, remove []time.Duration
	b.ResetTimer()
	for i := range benchPods {
		cfg := &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: fmt.Sprintf("p%02d", i), Namespace: "bench", Uid: fmt.Sprintf("u%02d", i)},
			Hostname: fmt.Sprintf("p%02d", i),
		}
		start := time.Now()
		resp, err := d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		run = append(run, time.Since(start))
		start = time.Now()
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		remove = append(remove, time.Since(start))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(run)), "run-median-ms")
	b.ReportMetric(ms(p90(run)), "run-p90-ms")
	b.ReportMetric(ms(median(floorUp)), "floor-up-median-ms")
	b.ReportMetric(ms(median(remove)), "stop+rm-median-ms")
	b.ReportMetric(ms(median(floorDown)), "floor-down-median-ms")
	b.Logf("RunPodSandbox: median %v p90 %v | floor (netns + CNI ADD): median %v p90 %v", median(run), p90(run), median(floorUp), p90(floorUp))
	b.Logf("Stop+RemovePodSandbox: median %v p90 %v | floor (CNI DEL + unpin): median %v p90 %v", median(remove), p90(remove), median(floorDown), p90(floorDown))
}

func p90(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sortDurations(s)
	return s[len(s)*9/10]
}
