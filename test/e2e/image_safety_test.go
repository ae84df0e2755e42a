package e2e

import (
	"archive/tar"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

// serve starts an in-memory registry on 127.0.0.1 for images a real
// registry would refuse (corrupt blobs) or that must be slowed down.
func serve(t *testing.T) (*testimage.Server, string) {
	srv := testimage.NewServer()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, strings.TrimPrefix(hs.URL, "http://")
}

func TestMaliciousLayersRejected(t *testing.T) {
	srv, host := serve(t)
	outside := t.TempDir() // an attacker's target outside crid's root
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("original"), 0o644)
	rel := strings.Repeat("../", 20) + strings.TrimPrefix(outside, "/")
	d := framework.Start(t, framework.Options{})
	hdr := func(name string, typ byte, link string, size int64) testimage.Entry {
		return testimage.Entry{Header: &tar.Header{Name: name, Typeflag: typ, Linkname: link, Size: size, Mode: 0o644, ModTime: testimage.Epoch}, Body: make([]byte, size)}
	}
	cases := []struct {
		name    string
		entries []testimage.Entry
	}{
		{"path traversal", []testimage.Entry{hdr(rel+"/pwned", tar.TypeReg, "", 4)}},
		{"nested traversal", []testimage.Entry{hdr("a/../../"+rel+"/pwned", tar.TypeReg, "", 4)}},
		{"symlink escape", []testimage.Entry{testimage.Symlink("esc", outside), hdr("esc/pwned", tar.TypeReg, "", 4)}},
		{"relative symlink escape", []testimage.Entry{testimage.Symlink("esc", rel), hdr("esc/victim", tar.TypeReg, "", 4)}},
		{"hard link escape", []testimage.Entry{hdr("hl", tar.TypeLink, rel+"/victim", 0)}},
		{"hard link through symlink", []testimage.Entry{testimage.Symlink("esc", outside), hdr("hl", tar.TypeLink, "esc/victim", 0)}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := testimage.Build(testimage.Image{Layers: []testimage.Layer{{Entries: tc.entries}}})
			if err != nil {
				t.Fatal(err)
			}
			repo := fmt.Sprintf("evil/case%d", i)
			srv.Add(repo, "latest", b)
			_, err = d.Image.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: host + "/" + repo + ":latest"}})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("pull: %v, want InvalidArgument", err)
			}
			t.Logf("rejected: %v", err)
			if got := entries(t, outside); len(got) != 1 || got[0] != "victim" {
				t.Fatalf("written outside the root: %v", got)
			}
			if data, _ := os.ReadFile(victim); string(data) != "original" {
				t.Fatalf("victim changed: %q", data)
			}
			assertNoImageLeftovers(t, d)
		})
	}
	// An absolute name is confined to the layer, as docker and containerd do.
	b, err := testimage.Build(testimage.Image{Layers: []testimage.Layer{{Entries: []testimage.Entry{hdr(outside+"/abs", tar.TypeReg, "", 4)}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Add("evil/abs", "latest", b)
	ref := host + "/evil/abs:latest"
	pull(t, d, ref, nil)
	if got := entries(t, outside); len(got) != 1 {
		t.Fatalf("absolute entry escaped: %v", got)
	}
	dirs := verboseInfo(t, imageStatus(t, d, ref)).SnapshotDirs
	if _, err := os.Stat(filepath.Join(dirs[0], outside, "abs")); err != nil {
		t.Fatalf("absolute entry not inside its snapshot: %v", err)
	}
}

func TestCorruptBlobsRejected(t *testing.T) {
	srv, host := serve(t)
	d := framework.Start(t, framework.Options{})
	base, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	extra := testimage.Layer{Entries: []testimage.Entry{testimage.File("f", strings.Repeat("x", 100000), 0o644)}}
	b, err := testimage.Build(testimage.Image{Layers: []testimage.Layer{base, extra}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Add("bad/img", "latest", b)
	target := b.Layers[1].Digest
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
		want   string
	}{
		{"digest mismatch", func(data []byte) []byte {
			out := append([]byte(nil), data...)
			out[len(out)/2] ^= 0xff
			return out
		}, ""},
		{"truncated", func(data []byte) []byte { return data[:len(data)/2] }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Tamper = func(d digest.Digest, data []byte) []byte {
				if d == target {
					return tc.tamper(data)
				}
				return data
			}
			_, err := d.Image.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: host + "/bad/img:latest"}})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("pull: %v, want InvalidArgument", err)
			}
			t.Logf("rejected: %v", err)
			assertNoImageLeftovers(t, d)
		})
	}
}

func TestConcurrentPullsShareWork(t *testing.T) {
	srv, host := serve(t)
	b, err := testimage.MultiLayer(false)
	if err != nil {
		t.Fatal(err)
	}
	srv.Add("crid-test/multilayer", "latest", b)
	d := framework.Start(t, framework.Options{})
	ref := host + "/crid-test/multilayer:latest"
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := d.Image.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = resp.ImageRef
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != b.ConfigDigest.String() {
			t.Fatalf("ids = %v", ids)
		}
	}
	if got, want := srv.BlobRequests.Load(), int64(len(b.Layers)+1); got != want {
		t.Fatalf("%d blob requests for 6 concurrent pulls, want %d (one per blob)", got, want)
	}
}

// TestCrashDuringPullLeavesNothing kills crid while a layer download is
// stuck and checks the restart removes everything the pull had written.
func TestCrashDuringPullLeavesNothing(t *testing.T) {
	srv, host := serve(t)
	b, err := testimage.MultiLayer(false)
	if err != nil {
		t.Fatal(err)
	}
	srv.Add("crid-test/multilayer", "latest", b)
	stuck := b.Layers[len(b.Layers)-1].Digest
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	srv.Tamper = func(d digest.Digest, data []byte) []byte {
		if d == stuck {
			select {
			case reached <- struct{}{}:
			default:
			}
			<-release
		}
		return data
	}
	d := framework.Start(t, framework.Options{})
	go d.Image.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: host + "/crid-test/multilayer:latest"}})
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("pull never reached the stuck layer")
	}
	time.Sleep(300 * time.Millisecond) // let the other layers land
	if len(entries(t, filepath.Join(d.Root, "snapshots"))) == 0 {
		t.Fatal("expected the interrupted pull to have written snapshots")
	}
	d.Kill()
	once.Do(func() { close(release) })
	d.Launch()
	assertNoImageLeftovers(t, d)
}
