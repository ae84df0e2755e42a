package registry

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
)

// served is one manifest as a fake registry answers it.
type served struct {
	contentType string
	data        []byte
}

// seenRequest is what a fake registry recorded of one request.
type seenRequest struct {
	path   string
	query  string
	header http.Header
}

// fakeReg is an in-memory distribution API that records every request and
// can answer some of them itself through hook (return true when handled).
type fakeReg struct {
	mu        sync.Mutex
	manifests map[string]served // "repo:ref"
	blobs     map[digest.Digest][]byte
	seen      []seenRequest
	hook      func(w http.ResponseWriter, r *http.Request) bool
}

func newFakeReg() *fakeReg {
	return &fakeReg{manifests: map[string]served{}, blobs: map[digest.Digest][]byte{}}
}

// start serves reg on 127.0.0.1 until the test ends; it returns host:port.
func (reg *fakeReg) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func (reg *fakeReg) addImage(repo, tag string, b *testimage.Built) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for d, data := range b.Blobs {
		reg.blobs[d] = data
	}
	m := served{contentType: b.MediaType, data: b.Manifest}
	reg.manifests[repo+":"+b.ManifestDigest.String()] = m
	if tag != "" {
		reg.manifests[repo+":"+tag] = m
	}
}

// addRaw serves data under ref (a tag or a digest string) as is.
func (reg *fakeReg) addRaw(repo, ref, contentType string, data []byte) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.manifests[repo+":"+ref] = served{contentType: contentType, data: data}
}

// addIndex serves an index document under its digest and tag.
func (reg *fakeReg) addIndex(repo, tag, contentType string, data []byte) digest.Digest {
	d := digest.SHA256.FromBytes(data)
	reg.addRaw(repo, d.String(), contentType, data)
	if tag != "" {
		reg.addRaw(repo, tag, contentType, data)
	}
	return d
}

// count returns how many requests had a path containing sub.
func (reg *fakeReg) count(sub string) int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	n := 0
	for _, s := range reg.seen {
		if strings.Contains(s.path, sub) {
			n++
		}
	}
	return n
}

func (reg *fakeReg) requests() []seenRequest {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return append([]seenRequest(nil), reg.seen...)
}

func (reg *fakeReg) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reg.mu.Lock()
	reg.seen = append(reg.seen, seenRequest{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone()})
	hook := reg.hook
	reg.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if i := strings.LastIndex(p, "/manifests/"); i > 0 {
		reg.mu.Lock()
		m, ok := reg.manifests[p[:i]+":"+p[i+len("/manifests/"):]]
		reg.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", m.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		w.Write(m.data)
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i > 0 {
		reg.mu.Lock()
		data, ok := reg.blobs[digest.Digest(p[i+len("/blobs/"):])]
		reg.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return
	}
	http.NotFound(w, r)
}

// countingHandler counts requests to next by whether their path contains
// "/manifests/" or "/blobs/".
type countingHandler struct {
	next             http.Handler
	mu               sync.Mutex
	manifests, blobs int
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	switch {
	case strings.Contains(r.URL.Path, "/manifests/"):
		c.manifests++
	case strings.Contains(r.URL.Path, "/blobs/"):
		c.blobs++
	}
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *countingHandler) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.manifests, c.blobs
}

// serve starts h on 127.0.0.1 until the test ends and returns host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// closedAddr is a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

var amd64 = Platform{OS: "linux", Architecture: "amd64"}

func newTestClient(configDir string) *Client {
	return NewClient(configDir, amd64, slog.New(slog.DiscardHandler))
}

func mustRef(t *testing.T, s string) reference.Named {
	t.Helper()
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return ref
}

// writeHosts writes <dir>/<host>/hosts.toml and returns its path.
func writeHosts(t *testing.T, dir, host, content string) string {
	t.Helper()
	d := filepath.Join(dir, host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d, "hosts.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// smallImage builds a one-file image whose config carries the label
// which=label, so tests can tell images apart by their config.
func smallImage(t *testing.T, label string, platform ocispec.Platform, docker bool) *testimage.Built {
	t.Helper()
	b, err := testimage.Build(testimage.Image{
		Layers:   []testimage.Layer{{Entries: []testimage.Entry{testimage.File("hello", label+"\n", 0o644)}}},
		Platform: platform,
		Docker:   docker,
		Labels:   map[string]string{"which": label},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configLabel returns the "which" label of a pulled config.
func configLabel(t *testing.T, data []byte) string {
	t.Helper()
	var img ocispec.Image
	if err := json.Unmarshal(data, &img); err != nil {
		t.Fatalf("config is not JSON: %v", err)
	}
	return img.Config.Labels["which"]
}

// indexOf renders an index (OCI or Docker manifest list, by mediaType)
// over images, each under its platform.
func indexOf(t *testing.T, mediaType string, images ...*testimage.Built) []byte {
	t.Helper()
	var descs []ocispec.Descriptor
	for _, b := range images {
		p := b.Platform
		descs = append(descs, ocispec.Descriptor{MediaType: b.MediaType, Digest: b.ManifestDigest, Size: int64(len(b.Manifest)), Platform: &p})
	}
	data, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaType, "manifests": descs})
	if err != nil {
		t.Fatal(err)
	}
	return data
}
