package testimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fetch GETs http://host+path, with basic auth when user is set.
func fetch(t *testing.T, host, path, user, pass string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	req.Header.Set("Accept", strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		MediaTypeDockerManifest, MediaTypeDockerManifestList}, ", "))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, body
}

// verifyPulled fetches repo:ref back and checks every digest down to the
// layers, through an index when there is one; it returns the manifest digest.
func verifyPulled(t *testing.T, host, repo, ref, user, pass string) digest.Digest {
	t.Helper()
	code, hdr, body := fetch(t, host, "/v2/"+repo+"/manifests/"+ref, user, pass)
	if code != http.StatusOK {
		t.Fatalf("manifest %s:%s: %d %s", repo, ref, code, body)
	}
	d := digest.SHA256.FromBytes(body)
	if got := hdr.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("manifest %s:%s: header digest %s, body digest %s", repo, ref, got, d)
	}
	var m struct {
		MediaType string
		Config    ocispec.Descriptor
		Layers    []ocispec.Descriptor
		Manifests []ocispec.Descriptor
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if ct := hdr.Get("Content-Type"); ct != m.MediaType {
		t.Errorf("manifest %s:%s served as %s, is %s", repo, ref, ct, m.MediaType)
	}
	for _, c := range m.Manifests {
		verifyPulled(t, host, repo, c.Digest.String(), user, pass)
	}
	if len(m.Manifests) > 0 {
		return d
	}
	for _, desc := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		code, _, blob := fetch(t, host, "/v2/"+repo+"/blobs/"+desc.Digest.String(), user, pass)
		if code != http.StatusOK || digest.SHA256.FromBytes(blob) != desc.Digest || int64(len(blob)) != desc.Size {
			t.Fatalf("blob %s: %d, %d bytes", desc.Digest, code, len(blob))
		}
	}
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestPushToServerAndFetchBack(t *testing.T) {
	srv := NewServer()
	var posts atomic.Int64
	srv.OnRequest = func(r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	host := strings.TrimPrefix(hs.URL, "http://")
	p := &Pusher{Host: host}
	ml, err := MultiLayer(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(ctxT(t), "crid-test/multilayer", ml, "latest", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := verifyPulled(t, host, "crid-test/multilayer", "latest", "", ""); got != ml.ManifestDigest {
		t.Fatalf("pulled %s, pushed %s", got, ml.ManifestDigest)
	}
	idx, err := MultiArch()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PushIndex(ctxT(t), "crid-test/multiarch", idx, "latest"); err != nil {
		t.Fatal(err)
	}
	if got := verifyPulled(t, host, "crid-test/multiarch", "latest", "", ""); got != idx.Digest {
		t.Fatalf("pulled %s, pushed %s", got, idx.Digest)
	}
	before := posts.Load()
	if err := p.Push(ctxT(t), "crid-test/multilayer", ml, "latest"); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != before {
		t.Errorf("re-push uploaded %d blobs, want 0", posts.Load()-before)
	}
	if code, _, body := fetch(t, host, "/v2/crid-test/multilayer/tags/list", "", ""); code != 200 || !strings.Contains(string(body), `"latest","v1"`) {
		t.Errorf("tags: %d %s", code, body)
	}
	if err := p.PushBlob(ctxT(t), "x", digest.SHA256.FromString("a"), []byte("b")); err == nil || !strings.Contains(err.Error(), "DIGEST_INVALID") {
		t.Errorf("mismatching upload: %v", err)
	}
}

func TestServerCorruptsOnRequest(t *testing.T) {
	srv := NewServer()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	host := strings.TrimPrefix(hs.URL, "http://")
	b, err := Busybox()
	if err != nil {
		t.Fatal(err)
	}
	srv.Add("bb", "latest", b)
	layer := b.Layers[0].Digest
	path := "/v2/bb/blobs/" + layer.String()

	srv.Tamper = func(d digest.Digest, data []byte) []byte { return data[:10] }
	if code, _, body := fetch(t, host, path, "", ""); code != 200 || len(body) != 10 {
		t.Errorf("tampered: %d, %d bytes", code, len(body))
	}
	srv.Tamper = nil

	srv.DropAfter = func(d digest.Digest) (int64, bool) { return 1000, d == layer }
	resp, err := http.Get(hs.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || resp.ContentLength != b.Layers[0].Size {
		t.Errorf("dropped: read %d of %d, err %v", n, resp.ContentLength, err)
	}
	srv.DropAfter = nil

	bad := digest.SHA256.FromString("claimed")
	srv.SetBlob(bad, []byte("other content"))
	if code, _, body := fetch(t, host, "/v2/bb/blobs/"+bad.String(), "", ""); code != 200 || string(body) != "other content" {
		t.Errorf("mismatching blob: %d %q", code, body)
	}
	if got := srv.BlobRequests.Load(); got != 3 {
		t.Errorf("%d blob GETs counted, want 3", got)
	}
}

func TestServerAuth(t *testing.T) {
	srv := NewServer()
	srv.User, srv.Password = "crid", "s3cret"
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	host := strings.TrimPrefix(hs.URL, "http://")
	b, err := Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Pusher{Host: host}).Push(ctxT(t), "bb", b, "latest"); err == nil {
		t.Fatal("push without credentials succeeded")
	}
	if err := (&Pusher{Host: host, User: "crid", Password: "s3cret"}).Push(ctxT(t), "bb", b, "latest"); err != nil {
		t.Fatal(err)
	}
	verifyPulled(t, host, "bb", "latest", "crid", "s3cret")

	// Token auth: 401 with a Bearer challenge, token from /token.
	srv.Token = "tok"
	code, hdr, _ := fetch(t, host, "/v2/bb/manifests/latest", "", "")
	want := fmt.Sprintf(`Bearer realm="http://%s/token",service="testimage",scope="repository:bb:pull"`, host)
	if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != want {
		t.Fatalf("challenge: %d %q", code, hdr.Get("WWW-Authenticate"))
	}
	if code, _, _ := fetch(t, host, "/token?service=testimage", "crid", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("token with a bad password: %d", code)
	}
	code, _, body := fetch(t, host, "/token?service=testimage&scope=repository:bb:pull", "crid", "s3cret")
	var tok struct{ Token string }
	json.Unmarshal(body, &tok)
	if code != 200 || tok.Token != "tok" {
		t.Fatalf("token: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v2/bb/manifests/latest", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.TokenRequests.Load() != 1 {
		t.Errorf("with token: %s, %d grants", resp.Status, srv.TokenRequests.Load())
	}
}

// startRegistry runs hack/registry.sh start in a temp dir on a free port
// and stops it when the test ends.
func startRegistry(t *testing.T, user, pass string) (host, dir string) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/docker-registry"); err != nil {
		t.Skip("docker-registry not installed")
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "registry.sh")
	dir = t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := []string{"start", dir, fmt.Sprint(port)}
	if user != "" {
		out, err := exec.Command("htpasswd", "-Bbn", user, pass).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		hp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(hp, out, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, hp)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("stop registry: %v %s", err, out)
		}
	})
	if out, err := exec.Command(script, args...).CombinedOutput(); err != nil {
		t.Fatalf("start registry: %v\n%s", err, out)
	}
	return fmt.Sprintf("127.0.0.1:%d", port), dir
}

func TestPushToDockerRegistry(t *testing.T) {
	host, dir := startRegistry(t, "crid", "s3cret")
	if code, _, _ := fetch(t, host, "/v2/", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous /v2/: %d", code)
	}
	p := &Pusher{Host: host, User: "crid", Password: "s3cret"}
	ml, err := MultiLayer(false)
	if err != nil {
		t.Fatal(err)
	}
	mld, err := MultiLayer(true)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := MultiArch()
	if err != nil {
		t.Fatal(err)
	}
	list, err := MultiArchDocker()
	if err != nil {
		t.Fatal(err)
	}
	for _, push := range []func() error{
		func() error { return p.Push(ctxT(t), "crid-test/multilayer", ml, "latest") },
		func() error { return p.Push(ctxT(t), "crid-test/multilayer", mld, "docker") },
		func() error { return p.PushIndex(ctxT(t), "crid-test/multiarch", idx, "latest") },
		func() error { return p.PushIndex(ctxT(t), "crid-test/multiarch", list, "docker") },
	} {
		if err := push(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		repo, tag string
		want      digest.Digest
	}{
		{"crid-test/multilayer", "latest", ml.ManifestDigest},
		{"crid-test/multilayer", "docker", mld.ManifestDigest},
		{"crid-test/multiarch", "latest", idx.Digest},
		{"crid-test/multiarch", "docker", list.Digest},
	} {
		if got := verifyPulled(t, host, tc.repo, tc.tag, "crid", "s3cret"); got != tc.want {
			t.Errorf("%s:%s is %s, pushed %s", tc.repo, tc.tag, got, tc.want)
		}
	}
	if code, _, body := fetch(t, host, "/v2/_catalog", "crid", "s3cret"); code != 200 || !strings.Contains(string(body), "crid-test/multiarch") {
		t.Errorf("catalog: %d %s", code, body)
	}

	// The registry verifies uploads: a mismatching blob cannot be pushed...
	err = p.PushBlob(ctxT(t), "crid-test/bad", digest.SHA256.FromString("claimed"), []byte("other"))
	if err == nil || !strings.Contains(err.Error(), "DIGEST_INVALID") {
		t.Errorf("mismatching upload: %v", err)
	}
	// ...but it serves whatever its storage holds.
	layer := ml.Layers[1]
	for _, data := range [][]byte{[]byte("corrupt"), ml.Blobs[layer.Digest][:layer.Size/2]} {
		if err := CorruptRegistryBlob(dir, layer.Digest, data); err != nil {
			t.Fatal(err)
		}
		code, hdr, body := fetch(t, host, "/v2/crid-test/multilayer/blobs/"+layer.Digest.String(), "crid", "s3cret")
		if code != 200 || string(body) != string(data) || hdr.Get("Docker-Content-Digest") != layer.Digest.String() {
			t.Errorf("corrupted blob served as %d, %d bytes (want %d), digest header %s", code, len(body), len(data), hdr.Get("Docker-Content-Digest"))
		}
	}
}
