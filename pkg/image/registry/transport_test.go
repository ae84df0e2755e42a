package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// Basic credentials that worked are sent up front on later requests: one
// 401 per pull, not one per request.
func TestBasicAuthSentUpFront(t *testing.T) {
	img := smallImage(t, "upfront", ocispec.Platform{}, false)
	srv := testimage.NewServer()
	srv.User, srv.Password = "alice", "s3cret"
	srv.Add("library/app", "v1", img)
	var anonymous atomic.Int64
	srv.OnRequest = func(r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			anonymous.Add(1)
		}
	}
	host := serve(t, srv)
	c := newTestClient("")
	ref := mustRef(t, host+"/library/app:v1")
	creds := &Credentials{Username: "alice", Password: "s3cret"}
	if _, err := c.Pull(context.Background(), ref, creds); err != nil {
		t.Fatal(err)
	}
	rc, err := c.FetchBlob(context.Background(), ref, creds, img.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if n := anonymous.Load(); n != 1 {
		t.Errorf("%d requests without credentials, want 1 (the first)", n)
	}
	// Other credentials are not sent what alice's earned.
	if _, err := c.Pull(context.Background(), ref, &Credentials{Username: "alice", Password: "wrong"}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("wrong password: %v", err)
	}
}

// An Auth field that is not base64 of user:password is reported as such.
func TestBadAuthField(t *testing.T) {
	srv := testimage.NewServer()
	srv.User, srv.Password = "alice", "s3cret"
	host := serve(t, srv)
	_, err := newTestClient("").Pull(context.Background(), mustRef(t, host+"/library/app:v1"), &Credentials{Auth: "%%%"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "base64") {
		t.Errorf("error %v", err)
	}
}

// Token lifetimes: expires_in less a tenth, 60s by default; an identity
// token falls back to GET when the token server has no OAuth2 POST.
func TestFetchToken(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     map[string]any
		post     int // status for POST; 0: serve the token
		creds    *Credentials
		wantTTL  time.Duration
		wantGets int
	}{
		{"expires_in", map[string]any{"token": "t", "expires_in": 100}, 0, nil, 90 * time.Second, 1},
		{"default lifetime", map[string]any{"access_token": "t"}, 0, nil, 54 * time.Second, 1},
		{"refresh grant", map[string]any{"access_token": "t", "expires_in": 10}, 0, &Credentials{IdentityToken: "id"}, 9 * time.Second, 0},
		{"no OAuth2 POST", map[string]any{"token": "t", "expires_in": 10}, http.StatusMethodNotAllowed, &Credentials{IdentityToken: "id"}, 9 * time.Second, 1},
	} {
		var gets atomic.Int64
		host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && tc.post != 0 {
				w.WriteHeader(tc.post)
				return
			}
			if r.Method == http.MethodGet {
				gets.Add(1)
			}
			json.NewEncoder(w).Encode(tc.body)
		}))
		c := newTestClient("")
		ep := defaultServer(host)
		tok, ttl, err := c.fetchToken(context.Background(), ep, "http://"+host+"/token", "svc", "repository:a:pull", tc.creds)
		if err != nil || tok != "t" || ttl != tc.wantTTL || gets.Load() != int64(tc.wantGets) {
			t.Errorf("%s: token %q ttl %v gets %d, %v; want ttl %v gets %d", tc.name, tok, ttl, gets.Load(), err, tc.wantTTL, tc.wantGets)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "0": 0, "-1": 0, "soon": 0,
		time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat): 0,
	} {
		if got := parseRetryAfter(in); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	future := parseRetryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat))
	if future < 50*time.Second || future > time.Minute {
		t.Errorf("Retry-After a minute ahead: %v", future)
	}
}

// A registry error document is summarized; other bodies are kept on a line.
func TestStatusErrorMessage(t *testing.T) {
	err := &statusError{code: 404, method: "GET", url: "http://r/v2/a/manifests/x",
		body: summarize([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}`))}
	if want := "GET http://r/v2/a/manifests/x: 404 Not Found: MANIFEST_UNKNOWN (manifest unknown)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if got := summarize([]byte("<html>\n  oops\n</html>\n")); got != "<html> oops </html>" {
		t.Errorf("summarize = %q", got)
	}
}

// A mirror that refuses a connection is not retried, and is passed over
// for a while even once it listens again.
func TestRefusingMirrorSkipped(t *testing.T) {
	img := smallImage(t, "down", ocispec.Platform{}, false)
	server := testimage.NewServer()
	server.Add("library/app", "v1", img)
	serverAddr := serve(t, server)
	mirrorAddr := closedAddr(t)
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", "server = \"http://"+serverAddr+"\"\n[host.\"http://"+mirrorAddr+"\"]\n")
	c := newTestClient(dir)
	ref := mustRef(t, "reg.test/library/app:v1")
	if _, err := c.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}

	// The mirror comes up on the same address; it is not asked yet.
	l, err := net.Listen("tcp", mirrorAddr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", mirrorAddr, err)
	}
	mirror := testimage.NewServer()
	mirror.Add("library/app", "v1", img)
	hs := &httptest.Server{Listener: l, Config: &http.Server{Handler: mirror}}
	hs.Start()
	t.Cleanup(hs.Close)
	if _, err := c.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	if n := mirror.ManifestRequests.Load() + mirror.BlobRequests.Load(); n != 0 {
		t.Errorf("mirror asked %d times while marked down", n)
	}
	// Once the mark expires it is used again.
	c.mu.Lock()
	for k := range c.down {
		c.down[k] = time.Now()
	}
	c.mu.Unlock()
	if _, err := c.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	if mirror.ManifestRequests.Load() == 0 {
		t.Errorf("mirror not asked after its mark expired")
	}
}

// A blob whose transfer stops midway fails with ErrUnavailable after the
// stall timeout instead of hanging.
func TestStalledBlob(t *testing.T) {
	img := smallImage(t, "stall", ocispec.Platform{}, false)
	layer := img.Layers[0]
	blob := img.Blobs[layer.Digest]
	var wg sync.WaitGroup
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:len(blob)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // until the client gives up
	}))
	c := newTestClient("")
	c.stallTimeout = 200 * time.Millisecond
	rc, err := c.FetchBlob(context.Background(), mustRef(t, host+"/library/app:v1"), nil, layer)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "no data") {
		t.Errorf("read %d bytes, error %v; want a stall error", len(data), err)
	}
	if len(data) != len(blob)/2 {
		t.Errorf("read %d bytes before the stall, want %d", len(data), len(blob)/2)
	}
	wg.Wait()
}
