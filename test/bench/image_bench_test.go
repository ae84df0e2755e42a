// Package bench measures crid end to end against its floors, measured in the
// same run on the same machine. Run with `make bench`.
package bench

import (
	"context"
	"os/exec"
	"sort"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

// BenchmarkPullLarge pulls the ~100 MB test image cold (absent before each
// pull) from a local registry and reports MB/s of uncompressed data, beside
// the floor: the same blobs downloaded raw with curl.
func BenchmarkPullLarge(b *testing.B) {
	img, err := testimage.Large(100, 5)
	if err != nil {
		b.Fatal(err)
	}
	reg := framework.StartRegistry(b, "", "")
	reg.Push(b, "crid-test/large", img, "latest")
	mb := float64(img.TarSize) / 1e6
	var compressed int64
	for _, l := range img.Layers {
		compressed += l.Size
	}

	const rounds = 5
	var floor, pulls []time.Duration
	for range rounds {
		start := time.Now()
		for _, l := range img.Layers {
			out, err := exec.Command("curl", "-sSf", "-o", "/dev/null", "http://"+reg.Host+"/v2/crid-test/large/blobs/"+l.Digest.String()).CombinedOutput()
			if err != nil {
				b.Fatalf("curl: %v %s", err, out)
			}
		}
		floor = append(floor, time.Since(start))
	}

	d := framework.Start(b, framework.Options{})
	ref := reg.Host + "/crid-test/large:latest"
	ctx := context.Background()
	b.ResetTimer()
	for range max(b.N, rounds) {
		start := time.Now()
		if _, err := d.Image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			b.Fatal(err)
		}
		pulls = append(pulls, time.Since(start))
		b.StopTimer()
		if _, err := d.Image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	pull, fl := median(pulls), median(floor)
	b.ReportMetric(mb/pull.Seconds(), "pull-MB/s")
	b.ReportMetric(mb/fl.Seconds(), "curl-floor-MB/s")
	b.Logf("image %.1f MB uncompressed, %.1f MB compressed, %d layers", mb, float64(compressed)/1e6, len(img.Layers))
	b.Logf("cold pull+unpack: median %v = %.1f MB/s uncompressed (over %d pulls)", pull.Round(time.Millisecond), mb/pull.Seconds(), len(pulls))
	b.Logf("floor, curl of the raw blobs: median %v = %.1f MB/s of uncompressed data (%.1f MB/s on the wire)", fl.Round(time.Millisecond), mb/fl.Seconds(), float64(compressed)/1e6/fl.Seconds())
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sortDurations(s)
	return s[len(s)/2]
}

func sortDurations(s []time.Duration) { sort.Slice(s, func(i, j int) bool { return s[i] < s[j] }) }
