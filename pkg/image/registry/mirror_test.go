package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// statusReg answers every request with code.
func statusReg(code int) *fakeReg {
	reg := newFakeReg()
	reg.hook = func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, `{"errors":[{"code":"TEST"}]}`, code)
		return true
	}
	return reg
}

// A mirror refusing connections and a mirror without the image are passed
// over, in file order, and the server answers.
func TestMirrorFallback(t *testing.T) {
	img := smallImage(t, "fallback", ocispec.Platform{}, false)
	empty, server := newFakeReg(), newFakeReg()
	server.addImage("library/app", "v1", img)
	closed, emptyAddr, serverAddr := closedAddr(t), empty.start(t), server.start(t)
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", `server = "http://`+serverAddr+`"
[host."http://`+closed+`"]
[host."http://`+emptyAddr+`"]
`)
	c := newTestClient(dir)
	for _, ref := range []string{"reg.test/library/app:v1", "reg.test/library/app@" + img.ManifestDigest.String()} {
		res, err := c.Pull(context.Background(), mustRef(t, ref), nil)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if res.ManifestDigest != img.ManifestDigest || string(res.ConfigData) != string(img.Config) {
			t.Errorf("%s: pulled %s", ref, res.ManifestDigest)
		}
	}
	if n := empty.count("/manifests/"); n != 2 {
		t.Errorf("second mirror asked %d times for manifests, want 2 (once per pull)", n)
	}
	for _, r := range empty.requests() {
		if !strings.Contains(r.query, "ns=") {
			t.Errorf("mirror request %s?%s has no ns parameter", r.path, r.query)
		}
	}
	for _, r := range server.requests() {
		if r.query != "" {
			t.Errorf("server request %s has query %q", r.path, r.query)
		}
	}

	// FetchBlob falls back the same way.
	layer := img.Layers[0]
	rc, err := c.FetchBlob(context.Background(), mustRef(t, "reg.test/library/app:v1"), nil, layer)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if empty.count("/blobs/"+layer.Digest.String()) != 1 || server.count("/blobs/"+layer.Digest.String()) != 1 {
		t.Errorf("blob requests: mirror %d, server %d", empty.count("/blobs/"), server.count("/blobs/"))
	}
}

// When every endpoint fails, the error is the last meaningful answer (the
// server's, unless the server could not be reached).
func TestAllEndpointsFail(t *testing.T) {
	type endpoint func(t *testing.T) string // returns host:port
	closed := func(t *testing.T) string { return closedAddr(t) }
	status := func(code int) endpoint { return func(t *testing.T) string { return statusReg(code).start(t) } }
	for _, tc := range []struct {
		name    string
		mirrors []endpoint
		server  endpoint
		is      error
		from    string // "server" or "mirror": whose URL the error names
	}{
		{"server forbids", []endpoint{closed, status(404)}, status(403), errdefs.ErrPermissionDenied, "server"},
		{"server has no such image", []endpoint{closed, status(503)}, status(404), errdefs.ErrNotFound, "server"},
		{"server wants auth", []endpoint{status(404)}, status(401), errdefs.ErrUnauthenticated, "server"},
		{"unreachable server: the mirror's answer", []endpoint{status(404)}, closed, errdefs.ErrNotFound, "mirror"},
		{"nothing reachable", []endpoint{closed}, closed, errdefs.ErrUnavailable, "server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hosts := ""
			var last string
			for _, m := range tc.mirrors {
				last = m(t)
				hosts += "[host.\"http://" + last + "\"]\n"
			}
			server := tc.server(t)
			dir := t.TempDir()
			writeHosts(t, dir, "reg.test", `server = "http://`+server+"\"\n"+hosts)
			_, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "reg.test/library/app:v1"), nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			want := server
			if tc.from == "mirror" {
				want = last
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the %s %s", err, tc.from, want)
			}
		})
	}
}

func TestPullNoUsableEndpoint(t *testing.T) {
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", "server = \"http://"+closedAddr(t)+"\"\ncapabilities = [\"pull\"]\n")
	_, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "reg.test/library/app:v1"), nil)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("tag pull with no resolving endpoint: %v", err)
	}
}

func TestPullCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newTestClient("").Pull(ctx, mustRef(t, closedAddr(t)+"/library/app:v1"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}
