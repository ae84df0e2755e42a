package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// methodLog records "METHOD path" of every request a server sees.
type methodLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *methodLog) record(r *http.Request) {
	l.mu.Lock()
	l.seen = append(l.seen, r.Method+" "+r.URL.Path)
	l.mu.Unlock()
}

func (l *methodLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.seen
	l.seen = nil
	return out
}

// Resolve answers a tag with one HEAD where the registry sends the digest,
// and FetchManifest then follows the index it names to linux/amd64.
func TestResolveThenFetchManifest(t *testing.T) {
	amd := smallImage(t, "amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, false)
	arm := smallImage(t, "arm64", ocispec.Platform{OS: "linux", Architecture: "arm64"}, false)
	idx, err := testimage.Index(arm, amd)
	if err != nil {
		t.Fatal(err)
	}
	srv := testimage.NewServer()
	srv.AddIndex("library/app", "multi", idx)
	srv.Add("library/app", "single", amd)
	srv.AddIndex("library/app", "armonly", mustIndex(t, arm))
	log := &methodLog{}
	srv.OnRequest = log.record
	host := serve(t, srv)
	c := newTestClient("")
	ctx := context.Background()

	desc, ep, err := c.Resolve(ctx, mustRef(t, host+"/library/app:multi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: idx.Digest, Size: int64(len(idx.Data))}
	if desc.MediaType != want.MediaType || desc.Digest != want.Digest || desc.Size != want.Size {
		t.Errorf("resolved %+v, want %+v", desc, want)
	}
	if ep == nil || ep.URL.String() != "http://"+host {
		t.Errorf("endpoint %v", ep)
	}
	if got := log.take(); len(got) != 1 || got[0] != "HEAD /v2/library/app/manifests/multi" {
		t.Errorf("requests %q, want one HEAD", got)
	}

	res, err := c.FetchManifest(ctx, mustRef(t, host+"/library/app:multi"), nil, desc)
	if err != nil {
		t.Fatal(err)
	}
	if res.TopDigest != idx.Digest || res.ManifestDigest != amd.ManifestDigest || len(res.IndexDigests) != 1 || res.ConfigData != nil {
		t.Errorf("fetched top %s manifest %s indexes %v", res.TopDigest, res.ManifestDigest, res.IndexDigests)
	}
	if got := log.take(); len(got) != 2 || got[0] != "GET /v2/library/app/manifests/"+idx.Digest.String() ||
		got[1] != "GET /v2/library/app/manifests/"+amd.ManifestDigest.String() {
		t.Errorf("requests %q, want the index then the amd64 manifest by digest", got)
	}
	cfg, err := c.FetchBlobBytes(ctx, mustRef(t, host+"/library/app:multi"), nil, res.Manifest.Config, 0)
	if err != nil || string(cfg) != string(amd.Config) {
		t.Fatalf("config: %v", err)
	}
	if got := log.take(); len(got) != 1 || got[0] != "GET /v2/library/app/blobs/"+amd.ConfigDigest.String() {
		t.Errorf("requests %q, want the config blob", got)
	}

	// By digest: one GET, its content verified.
	ref := mustRef(t, host+"/library/app@"+amd.ManifestDigest.String())
	if desc, _, err = c.Resolve(ctx, ref, nil); err != nil || desc.Digest != amd.ManifestDigest || desc.MediaType != amd.MediaType {
		t.Errorf("resolve by digest: %+v, %v", desc, err)
	}
	if got := log.take(); len(got) != 1 || !strings.HasPrefix(got[0], "GET ") {
		t.Errorf("requests %q, want one GET", got)
	}

	// An index without the platform, a tag that is not there.
	desc, _, err = c.Resolve(ctx, mustRef(t, host+"/library/app:armonly"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchManifest(ctx, mustRef(t, host+"/library/app:armonly"), nil, desc); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("index without linux/amd64: %v", err)
	}
	_, _, err = c.Resolve(ctx, mustRef(t, host+"/library/app:nope"), nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown tag: %v", err)
	}
	for _, s := range []string{`image "` + host + `/library/app:nope" not found`, "http://" + host + "/v2/library/app/manifests/nope", "404"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func mustIndex(t *testing.T, images ...*testimage.Built) *testimage.BuiltIndex {
	t.Helper()
	idx, err := testimage.Index(images...)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// Without Docker-Content-Digest on HEAD (or with HEAD refused), Resolve
// falls back to GET and computes the digest.
func TestResolveFallsBackToGet(t *testing.T) {
	img := smallImage(t, "get", ocispec.Platform{}, false)
	for _, headStatus := range []int{0, http.StatusMethodNotAllowed} {
		reg := newFakeReg() // sends no Docker-Content-Digest
		reg.addImage("library/app", "v1", img)
		reg.hook = func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodHead && headStatus != 0 {
				w.WriteHeader(headStatus)
				return true
			}
			return false
		}
		host := reg.start(t)
		desc, _, err := newTestClient("").Resolve(context.Background(), mustRef(t, host+"/library/app:v1"), nil)
		if err != nil {
			t.Fatalf("HEAD status %d: %v", headStatus, err)
		}
		if desc.Digest != img.ManifestDigest || desc.Size != int64(len(img.Manifest)) || desc.MediaType != img.MediaType {
			t.Errorf("HEAD status %d: resolved %+v", headStatus, desc)
		}
		if n := reg.count("/manifests/v1"); n != 2 {
			t.Errorf("HEAD status %d: %d manifest requests, want HEAD then GET", headStatus, n)
		}
	}
}

// A descriptor whose size disagrees with the content, or that is over the
// limit, is refused; the latter without a request.
func TestFetchManifestChecksDescriptor(t *testing.T) {
	img := smallImage(t, "desc", ocispec.Platform{}, false)
	reg := newFakeReg()
	reg.addImage("library/app", "v1", img)
	host := reg.start(t)
	c := newTestClient("")
	ref := mustRef(t, host+"/library/app:v1")
	good := ocispec.Descriptor{MediaType: img.MediaType, Digest: img.ManifestDigest, Size: int64(len(img.Manifest))}
	for _, tc := range []struct {
		name     string
		desc     ocispec.Descriptor
		substr   string
		requests int
	}{
		{"wrong size", ocispec.Descriptor{Digest: good.Digest, Size: good.Size + 1}, "descriptor says", 1},
		{"over the limit", ocispec.Descriptor{Digest: good.Digest, Size: MaxManifestSize + 1}, "limit", 0},
		{"not a digest", ocispec.Descriptor{Digest: "sha256:nope", Size: 1}, "digest", 0},
		{"other content", ocispec.Descriptor{Digest: digest.FromString("x"), Size: good.Size}, "not found", 1},
	} {
		before := reg.count("/manifests/")
		_, err := c.FetchManifest(context.Background(), ref, nil, tc.desc)
		if err == nil || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.substr)
		}
		if n := reg.count("/manifests/") - before; n != tc.requests {
			t.Errorf("%s: %d requests, want %d", tc.name, n, tc.requests)
		}
	}
	if res, err := c.FetchManifest(context.Background(), ref, nil, good); err != nil || res.ManifestDigest != good.Digest {
		t.Errorf("good descriptor: %v", err)
	}
}

// FetchBlobBytes passes over a mirror that serves corrupt bytes and
// refuses blobs over its limit without asking.
func TestFetchBlobBytes(t *testing.T) {
	img := smallImage(t, "bytes", ocispec.Platform{}, false)
	bad, good := testimage.NewServer(), testimage.NewServer()
	bad.Add("library/app", "v1", img)
	good.Add("library/app", "v1", img)
	bad.Tamper = func(d digest.Digest, data []byte) []byte {
		out := append([]byte(nil), data...)
		out[0] ^= 0xff
		return out
	}
	badAddr, goodAddr := serve(t, bad), serve(t, good)
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", "server = \"http://"+goodAddr+"\"\n[host.\"http://"+badAddr+"\"]\n")
	c := newTestClient(dir)
	ref := mustRef(t, "reg.test/library/app:v1")
	cfg := ocispec.Descriptor{Digest: img.ConfigDigest, Size: int64(len(img.Config))}
	data, err := c.FetchBlobBytes(context.Background(), ref, nil, cfg, 0)
	if err != nil || string(data) != string(img.Config) {
		t.Fatalf("got %d bytes, %v", len(data), err)
	}
	if bad.BlobRequests.Load() != 1 || good.BlobRequests.Load() != 1 {
		t.Errorf("blob requests: corrupt mirror %d, server %d", bad.BlobRequests.Load(), good.BlobRequests.Load())
	}
	_, err = c.FetchBlobBytes(context.Background(), ref, nil, cfg, cfg.Size-1)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over the limit: %v", err)
	}
	if good.BlobRequests.Load() != 1 {
		t.Errorf("a blob over the limit was requested")
	}
}

// Requests go below the mirror URL's path plus /v2, or below the path
// as-is with override_path.
func TestMirrorPaths(t *testing.T) {
	img := smallImage(t, "paths", ocispec.Platform{}, false)
	for _, tc := range []struct {
		name, path, options, want string
	}{
		{"plain", "", "", "/v2/library/app/manifests/v1"},
		{"path prefix", "/cache", "", "/cache/v2/library/app/manifests/v1"},
		{"path ending in /v2", "/cache/v2", "", "/cache/v2/library/app/manifests/v1"},
		{"override_path", "/api/proxy", "override_path = true\n", "/api/proxy/library/app/manifests/v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testimage.NewServer()
			srv.Add("library/app", "v1", img)
			log := &methodLog{}
			host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				log.record(r)
				// Serve the distribution API wherever the client put it.
				i := strings.Index(r.URL.Path, "/library/")
				r.URL.Path = "/v2" + r.URL.Path[i:]
				srv.ServeHTTP(w, r)
			}))
			dir := t.TempDir()
			writeHosts(t, dir, "reg.test", "server = \"http://"+closedAddr(t)+"\"\n[host.\"http://"+host+tc.path+"\"]\n"+tc.options)
			if _, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "reg.test/library/app:v1"), nil); err != nil {
				t.Fatal(err)
			}
			if got := log.take(); len(got) == 0 || got[0] != "GET "+tc.want {
				t.Errorf("requests %q, want first GET %s", got, tc.want)
			}
		})
	}
}

func TestPlatformVariantDefaults(t *testing.T) {
	d := func(arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: digest.FromString(arch + variant), Platform: &ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant}}
	}
	for _, tc := range []struct {
		p    Platform
		in   []ocispec.Descriptor
		want ocispec.Descriptor
	}{
		{Platform{"linux", "arm64", "v8"}, []ocispec.Descriptor{d("amd64", ""), d("arm64", "")}, d("arm64", "")},
		{Platform{"linux", "arm64", ""}, []ocispec.Descriptor{d("arm64", "v8")}, d("arm64", "v8")},
		{Platform{"linux", "amd64", "v1"}, []ocispec.Descriptor{d("amd64", "v3"), d("amd64", "")}, d("amd64", "")},
	} {
		got, err := tc.p.match(tc.in)
		if err != nil || got.Digest != tc.want.Digest {
			t.Errorf("%+v: got %s, %v", tc.p, got.Platform, err)
		}
	}
}
