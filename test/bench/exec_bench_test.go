package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const benchExecs = 50

// BenchmarkExecSync reports ExecSync latency of `true` in a running
// busybox container over 50 calls, beside the floor measured in the same
// run on the same container: `runc --root <crid's runc root> exec <id>
// true`, done directly. The two alternate call by call, so that both see
// the same machine.
func BenchmarkExecSync(b *testing.B) {
	d, ref := busyboxDaemon(b)
	ctx := context.Background()
	pods := &benchPod{d: d, live: map[string]bool{}}
	pods.run(b, ref)
	b.Cleanup(pods.cleanup) // runs before the daemon stops
	id, _, _ := pods.createStart(b, "exec")

	// The default handler's private runc root (cmd/crid: <state>/runc/<handler>).
	root := filepath.Join(d.State, "runc", "runc")
	execSync := func() time.Duration {
		t0 := time.Now()
		r, err := d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 30})
		el := time.Since(t0)
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("ExecSync true: %v %v", r, err)
		}
		return el
	}
	floor := func() time.Duration {
		t0 := time.Now()
		out, err := exec.Command("runc", "--root", root, "exec", id, "true").CombinedOutput()
		el := time.Since(t0)
		if err != nil {
			b.Fatalf("runc --root %s exec %s true: %v: %s", root, id, err, out)
		}
		return el
	}
	// Warm both paths (page cache, the shim's first exec) uncounted.
	for range 3 {
		execSync()
		floor()
	}

	var crid, direct []time.Duration
	b.ResetTimer()
	for range benchExecs {
		crid = append(crid, execSync())
		b.StopTimer()
		direct = append(direct, floor())
		b.StartTimer()
	}
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(crid)), "execsync-median-ms")
	b.ReportMetric(ms(p90(crid)), "execsync-p90-ms")
	b.ReportMetric(ms(median(direct)), "floor-runc-exec-median-ms")
	b.ReportMetric(ms(p90(direct)), "floor-runc-exec-p90-ms")
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	b.Logf("ExecSync `true` (%d calls): median %v p90 %v | floor runc --root %s exec <id> true: median %v p90 %v",
		len(crid), r(median(crid)), r(p90(crid)), root, r(median(direct)), r(p90(direct)))
}
