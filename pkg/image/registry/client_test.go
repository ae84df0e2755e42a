package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestBasicAuth(t *testing.T) {
	img := smallImage(t, "basic", ocispec.Platform{}, false)
	for _, tc := range []struct {
		name          string
		creds         *Credentials
		err           error
		wantManifests int // requests for the manifest
	}{
		{"username and password", &Credentials{Username: "alice", Password: "s3cret"}, nil, 2},
		{"auth field", &Credentials{Auth: base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))}, nil, 2},
		{"wrong password", &Credentials{Username: "alice", Password: "nope"}, errdefs.ErrUnauthenticated, 2},
		{"anonymous", nil, errdefs.ErrUnauthenticated, 1},
		{"identity token only", &Credentials{IdentityToken: "x"}, errdefs.ErrUnauthenticated, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testimage.NewServer()
			srv.User, srv.Password = "alice", "s3cret"
			srv.Add("library/app", "v1", img)
			counter := &countingHandler{next: srv}
			host := serve(t, counter)
			res, err := newTestClient("").Pull(context.Background(), mustRef(t, host+"/library/app:v1"), tc.creds)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if string(res.ConfigData) != string(img.Config) {
				t.Errorf("config differs")
			}
			if m, _ := counter.counts(); m != tc.wantManifests {
				t.Errorf("%d manifest requests, want %d (a 401 is answered at most once)", m, tc.wantManifests)
			}
		})
	}
}

// tokenPolicy is what a fake token server accepts.
type tokenPolicy struct {
	user, pass string // basic credentials it requires, if set
	refresh    string // refresh token it accepts on POST
	empty      bool   // answer without a token
}

// tokenServer is a fake OAuth2 token endpoint for the bearer flow.
type tokenServer struct {
	tokenPolicy
	mu           sync.Mutex
	service      string
	scope        string // scope it insists on
	issued       map[string]bool
	gets, posts  int
	lastForm     url.Values
	lastUsername string
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var params url.Values
	if r.Method == http.MethodPost {
		ts.posts++
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		params = r.PostForm
		ts.lastForm = params
		if params.Get("grant_type") != "refresh_token" || params.Get("refresh_token") != ts.refresh || ts.refresh == "" {
			http.Error(w, "bad grant", http.StatusUnauthorized)
			return
		}
	} else {
		ts.gets++
		params = r.URL.Query()
		u, p, ok := r.BasicAuth()
		ts.lastUsername = u
		if ts.user != "" && (!ok || u != ts.user || p != ts.pass) {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
	}
	if params.Get("service") != ts.service || params.Get("scope") != ts.scope {
		http.Error(w, fmt.Sprintf("service %q scope %q", params.Get("service"), params.Get("scope")), http.StatusBadRequest)
		return
	}
	tok := fmt.Sprintf("tok-%d", len(ts.issued)+1)
	ts.issued[tok] = true
	if ts.empty {
		tok = ""
	}
	key := "token"
	if r.Method == http.MethodPost {
		key = "access_token"
	}
	json.NewEncoder(w).Encode(map[string]any{key: tok, "expires_in": 300})
}

func (ts *tokenServer) valid(tok string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued[tok]
}

func (ts *tokenServer) requests() (int, int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.gets, ts.posts
}

// bearerGate lets requests through to next only with a token ts issued
// (or the static token, if set).
func bearerGate(next http.Handler, ts *tokenServer, challenge, static string, rejectAll bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if rejectAll || !ok || !(ts.valid(tok) || (static != "" && tok == static)) {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestBearerAuth(t *testing.T) {
	img := smallImage(t, "bearer", ocispec.Platform{}, false)
	const scope = "repository:library/app:pull"
	for _, tc := range []struct {
		name          string
		ts            tokenPolicy
		creds         *Credentials
		noScope       bool   // challenge without scope: the client's own is used
		badRealm      bool   // challenge realm is not a URL
		static        string // registry token the registry accepts
		rejectAll     bool   // registry refuses every token
		err           error
		gets, posts   int // token requests over two pulls
		wantManifests int // registry manifest requests over two pulls (or one failed pull)
	}{
		{name: "anonymous token, cached", gets: 1, wantManifests: 3},
		{name: "basic credentials to the token server", ts: tokenPolicy{user: "bob", pass: "pw"},
			creds: &Credentials{Username: "bob", Password: "pw"}, gets: 1, wantManifests: 3},
		{name: "auth field to the token server", ts: tokenPolicy{user: "bob", pass: "pw"},
			creds: &Credentials{Auth: base64.StdEncoding.EncodeToString([]byte("bob:pw"))}, gets: 1, wantManifests: 3},
		{name: "challenge without scope", noScope: true, gets: 1, wantManifests: 3},
		{name: "identity token is a refresh grant", ts: tokenPolicy{refresh: "refresh-me", user: "nobody"},
			creds: &Credentials{IdentityToken: "refresh-me"}, posts: 1, wantManifests: 3},
		{name: "registry token is sent as is", static: "static-token",
			creds: &Credentials{RegistryToken: "static-token"}, wantManifests: 2},
		{name: "wrong password", ts: tokenPolicy{user: "bob", pass: "pw"},
			creds: &Credentials{Username: "bob", Password: "bad"}, err: errdefs.ErrUnauthenticated, gets: 1, wantManifests: 1},
		{name: "wrong refresh token", ts: tokenPolicy{refresh: "refresh-me"},
			creds: &Credentials{IdentityToken: "stale"}, err: errdefs.ErrUnauthenticated, posts: 1, wantManifests: 1},
		{name: "empty token", ts: tokenPolicy{empty: true}, err: errdefs.ErrUnauthenticated, gets: 1, wantManifests: 1},
		{name: "bad realm", badRealm: true, err: errdefs.ErrUnauthenticated, wantManifests: 1},
		{name: "token refused by the registry: one retry only", rejectAll: true, err: errdefs.ErrUnauthenticated, gets: 1, wantManifests: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := &tokenServer{tokenPolicy: tc.ts, service: "test-registry", scope: scope, issued: map[string]bool{}}
			tokenHost := serve(t, ts)
			challenge := `Bearer realm="http://` + tokenHost + `/token",service="test-registry",scope="` + scope + `"`
			if tc.noScope {
				challenge = `Bearer realm="http://` + tokenHost + `/token",service="test-registry"`
			}
			if tc.badRealm {
				challenge = `Bearer realm="/token",service="test-registry"`
			}
			srv := testimage.NewServer()
			srv.Add("library/app", "v1", img)
			gate := &countingHandler{next: bearerGate(srv, ts, challenge, tc.static, tc.rejectAll)}
			host := serve(t, gate)
			c := newTestClient("")
			ref := mustRef(t, host+"/library/app:v1")
			_, err := c.Pull(context.Background(), ref, tc.creds)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				// A second pull and a blob fetch reuse the cached token.
				if _, err := c.Pull(context.Background(), ref, tc.creds); err != nil {
					t.Fatalf("second pull: %v", err)
				}
				rc, err := c.FetchBlob(context.Background(), ref, tc.creds, img.Layers[0])
				if err != nil {
					t.Fatalf("fetch blob: %v", err)
				}
				rc.Close()
			}
			if gets, posts := ts.requests(); gets != tc.gets || posts != tc.posts {
				t.Errorf("token requests: %d GET, %d POST; want %d, %d", gets, posts, tc.gets, tc.posts)
			}
			if m, _ := gate.counts(); m != tc.wantManifests {
				t.Errorf("%d manifest requests, want %d", m, tc.wantManifests)
			}
			if tc.posts > 0 {
				f := ts.lastForm
				if f.Get("client_id") == "" || f.Get("service") != "test-registry" || f.Get("scope") != scope {
					t.Errorf("refresh grant form %v", f)
				}
			}
		})
	}
}

// tokenGatedImage serves a small image (library/app:v1) behind bearer
// token auth and returns it, the token server, a client and the reference.
func tokenGatedImage(t *testing.T, name string) (*testimage.Built, *tokenServer, *Client, reference.Named) {
	img := smallImage(t, name, ocispec.Platform{}, false)
	ts := &tokenServer{service: "svc", scope: "repository:library/app:pull", issued: map[string]bool{}}
	tokenHost := serve(t, ts)
	srv := testimage.NewServer()
	srv.Add("library/app", "v1", img)
	host := serve(t, bearerGate(srv, ts, `Bearer realm="http://`+tokenHost+`/token",service="svc"`, "", false))
	return img, ts, newTestClient(""), mustRef(t, host+"/library/app:v1")
}

// A cached token is per credentials: other credentials get their own.
func TestTokenCachePerCredentials(t *testing.T) {
	_, ts, c, ref := tokenGatedImage(t, "percreds")
	for _, creds := range []*Credentials{nil, {Username: "a", Password: "1"}, {Username: "b", Password: "2"}, nil, {Username: "a", Password: "1"}} {
		if _, err := c.Pull(context.Background(), ref, creds); err != nil {
			t.Fatal(err)
		}
	}
	if gets, _ := ts.requests(); gets != 3 {
		t.Errorf("%d token requests, want 3 (one per distinct credentials)", gets)
	}
}

// Pulls sharing a client and its token cache may run at once.
func TestConcurrentPulls(t *testing.T) {
	img, ts, c, ref := tokenGatedImage(t, "concurrent")
	const n = 6
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			res, err := c.Pull(context.Background(), ref, nil)
			if err == nil && res.ManifestDigest != img.ManifestDigest {
				err = fmt.Errorf("pulled %s", res.ManifestDigest)
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if gets, _ := ts.requests(); gets < 1 || gets > n {
		t.Errorf("%d token requests for %d pulls", gets, n)
	}
}

func TestStatusAndRetry(t *testing.T) {
	img := smallImage(t, "retry", ocispec.Platform{}, false)
	for _, tc := range []struct {
		name     string
		statuses []int // answers to the first manifest requests, then the image
		err      error
		requests int // manifest requests
	}{
		{"404", []int{404, 404, 404}, errdefs.ErrNotFound, 1},
		{"403", []int{403, 403, 403}, errdefs.ErrPermissionDenied, 1},
		{"401 without challenge", []int{401, 401, 401}, errdefs.ErrUnauthenticated, 1},
		{"400", []int{400, 400, 400}, errdefs.ErrInvalidArgument, 1},
		{"503 always", []int{503, 503, 503, 503}, errdefs.ErrUnavailable, 3},
		{"500 always", []int{500, 500, 500, 500}, errdefs.ErrUnavailable, 3},
		{"429 always", []int{429, 429, 429, 429}, errdefs.ErrResourceExhausted, 3},
		{"503 twice then 200", []int{503, 503}, nil, 3},
		{"429 then 200", []int{429}, nil, 2},
		{"502 then 404", []int{502, 404}, errdefs.ErrNotFound, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := newFakeReg()
			reg.addImage("library/app", "v1", img)
			var mu sync.Mutex
			n := 0
			reg.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(r.URL.Path, "/manifests/") {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				n++
				if n <= len(tc.statuses) {
					http.Error(w, "injected", tc.statuses[n-1])
					return true
				}
				return false
			}
			host := reg.start(t)
			res, err := newTestClient("").Pull(context.Background(), mustRef(t, host+"/library/app:v1"), nil)
			if tc.err == nil && (err != nil || res.ManifestDigest != img.ManifestDigest) {
				t.Fatalf("pull: %v", err)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got := reg.count("/manifests/"); got != tc.requests {
				t.Errorf("%d manifest requests, want %d", got, tc.requests)
			}
		})
	}
}

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		in     string
		scheme string
		params map[string]string
	}{
		{`Bearer realm="https://auth.test/token",service="registry.test",scope="repository:a/b:pull"`, "Bearer",
			map[string]string{"realm": "https://auth.test/token", "service": "registry.test", "scope": "repository:a/b:pull"}},
		{`Bearer realm="https://auth.test/token", scope="repository:a:pull,push"`, "Bearer",
			map[string]string{"realm": "https://auth.test/token", "scope": "repository:a:pull,push"}},
		{`Bearer Realm=https://auth.test/token,service=reg`, "Bearer", map[string]string{"realm": "https://auth.test/token", "service": "reg"}},
		{`Basic realm="Registry Realm"`, "Basic", map[string]string{"realm": "Registry Realm"}},
		{`  Basic  `, "Basic", map[string]string{}},
		{`Bearer realm="unterminated`, "Bearer", map[string]string{"realm": "unterminated"}},
		{``, "", map[string]string{}},
	} {
		scheme, params := parseChallenge(tc.in)
		if scheme != tc.scheme || !reflect.DeepEqual(params, tc.params) {
			t.Errorf("parseChallenge(%q) = %q %v; want %q %v", tc.in, scheme, params, tc.scheme, tc.params)
		}
	}
}

func TestCredentials(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		c          *Credentials
		user, pass string
		ok         bool
	}{
		{nil, "", "", false},
		{&Credentials{}, "", "", false},
		{&Credentials{Username: "u", Password: "p"}, "u", "p", true},
		{&Credentials{Username: "u", Password: "p", Auth: b64("x:y")}, "u", "p", true},
		{&Credentials{Auth: b64("u:p:with:colons")}, "u", "p:with:colons", true},
		{&Credentials{Auth: b64("nocolon")}, "", "", false},
		{&Credentials{Auth: "%%%not base64"}, "", "", false},
		{&Credentials{IdentityToken: "t", RegistryToken: "r"}, "", "", false},
	} {
		u, p, ok := tc.c.userPass()
		if u != tc.user || p != tc.pass || ok != tc.ok {
			t.Errorf("%+v: userPass = %q %q %v", tc.c, u, p, ok)
		}
	}
	var nilCreds *Credentials
	keys := map[string]bool{nilCreds.Key(): true}
	if nilCreds.Key() != "" {
		t.Errorf("nil credentials key %q", nilCreds.Key())
	}
	for _, c := range []*Credentials{{}, {Username: "u", Password: "p"}, {Username: "u", Password: "q"},
		{Username: "up"}, {IdentityToken: "t"}, {RegistryToken: "t"}} {
		k := c.Key()
		if keys[k] {
			t.Errorf("%+v: key %q collides", c, k)
		}
		keys[k] = true
		if c2 := *c; c2.Key() != k {
			t.Errorf("%+v: key not stable", c)
		}
	}
}

func TestStatusErrorKinds(t *testing.T) {
	for code, want := range map[int]error{
		404: errdefs.ErrNotFound, 401: errdefs.ErrUnauthenticated, 403: errdefs.ErrPermissionDenied,
		429: errdefs.ErrResourceExhausted, 500: errdefs.ErrUnavailable, 502: errdefs.ErrUnavailable,
		503: errdefs.ErrUnavailable, 400: errdefs.ErrInvalidArgument, 405: errdefs.ErrInvalidArgument,
	} {
		err := &statusError{code: code, url: "http://r/v2/x", body: "why"}
		if !errors.Is(err, want) {
			t.Errorf("%d: %v is not %v", code, err, want)
		}
		if wantTransient := code == 429 || code >= 500; transient(err) != wantTransient {
			t.Errorf("%d: transient = %v", code, !wantTransient)
		}
		if !strings.Contains(err.Error(), "why") || !strings.Contains(err.Error(), "http://r/v2/x") {
			t.Errorf("%d: message %q", code, err)
		}
	}
}

func TestLastMeaningful(t *testing.T) {
	unavail := fmt.Errorf("mirror: %w", errdefs.ErrUnavailable)
	notFound := fmt.Errorf("server: %w", errdefs.ErrNotFound)
	denied := fmt.Errorf("server: %w", errdefs.ErrPermissionDenied)
	unavail2 := fmt.Errorf("server: %w", errdefs.ErrUnavailable)
	for _, tc := range []struct {
		errs []error
		want error
	}{
		{[]error{unavail}, unavail},
		{[]error{unavail, unavail2}, unavail2},
		{[]error{unavail, notFound, unavail2}, notFound},
		{[]error{notFound, denied}, denied},
		{[]error{denied, unavail}, denied},
	} {
		if got := lastMeaningful(tc.errs); got != tc.want {
			t.Errorf("lastMeaningful(%v) = %v, want %v", tc.errs, got, tc.want)
		}
	}
	if err := lastMeaningful(nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no errors: %v", err)
	}
}
