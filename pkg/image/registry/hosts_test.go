package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestEndpointsWithoutConfig(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"registry.example.com", "https://registry.example.com"},
		{"quay.io:443", "https://quay.io:443"},
		{"10.0.0.1:5000", "https://10.0.0.1:5000"},
		{"docker.io", "https://registry-1.docker.io"},
		{"127.0.0.1", "http://127.0.0.1"},
		{"127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"localhost:5000", "http://localhost:5000"},
		{"localhost", "http://localhost"},
		{"[::1]:5000", "http://[::1]:5000"},
	} {
		// No config dir, and a config dir without a file for the host.
		for _, dir := range []string{"", t.TempDir()} {
			eps, err := Endpoints(dir, tc.host)
			if err != nil {
				t.Fatalf("%s (dir %q): %v", tc.host, dir, err)
			}
			if len(eps) != 1 {
				t.Fatalf("%s: %d endpoints, want 1", tc.host, len(eps))
			}
			ep := eps[0]
			if ep.URL.String() != tc.want || !ep.Pull || !ep.Resolve || ep.Mirror || ep.TLS != nil || ep.apiBase() != "/v2" {
				t.Errorf("%s: got %s pull=%v resolve=%v mirror=%v tls=%v api=%q; want %s, pull+resolve, /v2",
					tc.host, ep.URL, ep.Pull, ep.Resolve, ep.Mirror, ep.TLS, ep.apiBase(), tc.want)
			}
		}
	}
}

type wantEndpoint struct {
	url                   string
	pull, resolve, mirror bool
	api                   string
}

func TestEndpointsHostsFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // dir -> hosts.toml
		host  string
		want  []wantEndpoint
		check func(t *testing.T, eps []*Endpoint)
	}{{
		name: "mirrors in file order then the server",
		host: "reg.test",
		files: map[string]string{"reg.test": `
server = "https://reg.test"

[host."https://zz.test"]
  capabilities = ["pull", "resolve"]

[host.'http://aa.test:5000/prefix']
  capabilities = ["pull"]

[host."https://mm.test/v2"]
`},
		want: []wantEndpoint{
			{"https://zz.test", true, true, true, "/v2"},
			{"http://aa.test:5000/prefix", true, false, true, "/prefix/v2"},
			{"https://mm.test/v2", true, true, true, "/v2"},
			{"https://reg.test", true, true, false, "/v2"},
		},
	}, {
		name:  "push-only mirror may neither pull nor resolve",
		host:  "reg.test",
		files: map[string]string{"reg.test": "[host.\"https://p.test\"]\n  capabilities = [\"push\"]\n"},
		want: []wantEndpoint{
			{"https://p.test", false, false, true, "/v2"},
			{"https://reg.test", true, true, false, "/v2"},
		},
	}, {
		name:  "server override with capabilities and override_path",
		host:  "reg.test",
		files: map[string]string{"reg.test": "server = \"http://127.0.0.1:9/base\"\ncapabilities = [\"pull\"]\noverride_path = true\n"},
		want:  []wantEndpoint{{"http://127.0.0.1:9/base", true, false, false, "/base"}},
	}, {
		name:  "server without scheme is https",
		host:  "reg.test",
		files: map[string]string{"reg.test": `server = "other.test:5000"`},
		want:  []wantEndpoint{{"https://other.test:5000", true, true, false, "/v2"}},
	}, {
		name:  "no server keeps the plain-http loopback default",
		host:  "127.0.0.1:5000",
		files: map[string]string{"127.0.0.1:5000": `[host."http://127.0.0.1:6000"]`},
		want: []wantEndpoint{
			{"http://127.0.0.1:6000", true, true, true, "/v2"},
			{"http://127.0.0.1:5000", true, true, false, "/v2"},
		},
	}, {
		name:  "_default is the fallback",
		host:  "other.test",
		files: map[string]string{"_default": `[host."https://d.test"]`},
		want: []wantEndpoint{
			{"https://d.test", true, true, true, "/v2"},
			{"https://other.test", true, true, false, "/v2"},
		},
	}, {
		name:  "the host's own file wins over _default",
		host:  "reg.test",
		files: map[string]string{"_default": `[host."https://d.test"]`, "reg.test": `[host."https://r.test"]`},
		want: []wantEndpoint{
			{"https://r.test", true, true, true, "/v2"},
			{"https://reg.test", true, true, false, "/v2"},
		},
	}, {
		name:  "docker.io",
		host:  "docker.io",
		files: map[string]string{"docker.io": `[host."https://mirror.test"]`},
		want: []wantEndpoint{
			{"https://mirror.test", true, true, true, "/v2"},
			{"https://registry-1.docker.io", true, true, false, "/v2"},
		},
	}, {
		name:  "override_path on a mirror",
		host:  "reg.test",
		files: map[string]string{"reg.test": "[host.\"https://m.test/api/proxy\"]\n  override_path = true\n"},
		want: []wantEndpoint{
			{"https://m.test/api/proxy", true, true, true, "/api/proxy"},
			{"https://reg.test", true, true, false, "/v2"},
		},
	}, {
		name: "headers and skip_verify",
		host: "reg.test",
		files: map[string]string{"reg.test": `
skip_verify = true

[host."https://m.test"]
  skip_verify = true

[host."https://m.test".header]
  x-one = "1"
  X-Many = ["a", "b"]
`},
		want: []wantEndpoint{
			{"https://m.test", true, true, true, "/v2"},
			{"https://reg.test", true, true, false, "/v2"},
		},
		check: func(t *testing.T, eps []*Endpoint) {
			m := eps[0]
			if got := m.Header.Values("X-One"); !reflect.DeepEqual(got, []string{"1"}) {
				t.Errorf("X-One = %q", got)
			}
			if got := m.Header.Values("X-Many"); !reflect.DeepEqual(got, []string{"a", "b"}) {
				t.Errorf("X-Many = %q", got)
			}
			for _, ep := range eps {
				if ep.TLS == nil || !ep.TLS.InsecureSkipVerify {
					t.Errorf("%s: skip_verify not applied: %+v", ep.URL, ep.TLS)
				}
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for host, content := range tc.files {
				writeHosts(t, dir, host, content)
			}
			eps, err := Endpoints(dir, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			var got []wantEndpoint
			for _, ep := range eps {
				got = append(got, wantEndpoint{ep.URL.String(), ep.Pull, ep.Resolve, ep.Mirror, ep.apiBase()})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("endpoints:\n got %+v\nwant %+v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, eps)
			}
		})
	}
}

func TestEndpointsErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		files   map[string]string // more files in the host dir
		is      error
	}{
		{"bad TOML", `server = "unterminated`, nil, errdefs.ErrInvalidArgument},
		{"unknown top-level key", `mirrors = ["https://m.test"]`, nil, errdefs.ErrInvalidArgument},
		{"unknown key in a host", "[host.\"https://m.test\"]\n  capabilites = [\"pull\"]\n", nil, errdefs.ErrInvalidArgument},
		{"bad mirror capability", "[host.\"https://m.test\"]\n  capabilities = [\"pull\", \"fetch\"]\n", nil, errdefs.ErrInvalidArgument},
		{"bad server capability", "server = \"https://s.test\"\ncapabilities = [\"resolv\"]\n", nil, errdefs.ErrInvalidArgument},
		{"server is not http", `server = "ftp://s.test"`, nil, errdefs.ErrInvalidArgument},
		{"header of the wrong type", "[host.\"https://m.test\"]\n[host.\"https://m.test\".header]\n  x = 1\n", nil, errdefs.ErrInvalidArgument},
		{"ca of the wrong type", "server = \"https://s.test\"\nca = 5\n", nil, errdefs.ErrInvalidArgument},
		{"missing ca file", "server = \"https://s.test\"\nca = \"nope.pem\"\n", nil, fs.ErrNotExist},
		{"ca file without a certificate", "[host.\"https://m.test\"]\n  ca = \"ca.pem\"\n", map[string]string{"ca.pem": "not PEM\n"}, errdefs.ErrInvalidArgument},
		{"top-level ca without server", "ca = \"gone.pem\"\n", nil, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeHosts(t, dir, "reg.test", tc.content)
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, "reg.test", name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			eps, err := Endpoints(dir, "reg.test")
			if err == nil {
				t.Fatalf("no error; endpoints %v", eps)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
		})
	}
}

// selfSigned makes a certificate for 127.0.0.1 that is its own CA.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	certPEM, keyPEM, err := testimage.SelfSignedCert("crid test registry", x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

func TestTLSEndpoints(t *testing.T) {
	cert, certPEM := selfSigned(t)
	reg := newFakeReg()
	img := smallImage(t, "tls", ocispec.Platform{}, false)
	reg.addImage("library/app", "v1", img)
	srv := httptest.NewUnstartedServer(reg)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case's handshake errors
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tlsURL := srv.URL // https://127.0.0.1:port
	absCA := filepath.Join(t.TempDir(), "abs-ca.pem")
	if err := os.WriteFile(absCA, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	closed := "http://" + closedAddr(t)

	for _, tc := range []struct {
		name    string
		hosts   string
		wantErr bool
	}{
		{"server ca relative to the host dir", "server = \"" + tlsURL + "\"\nca = \"ca.pem\"\n", false},
		{"server ca as an absolute list", "server = \"" + tlsURL + "\"\nca = [\"" + absCA + "\"]\n", false},
		{"server skip_verify", "server = \"" + tlsURL + "\"\nskip_verify = true\n", false},
		{"mirror ca", "server = \"" + closed + "\"\n[host.\"" + tlsURL + "\"]\n  ca = \"ca.pem\"\n", false},
		{"untrusted certificate", "server = \"" + tlsURL + "\"\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHosts(t, dir, "tls.test", tc.hosts)
			if err := os.WriteFile(filepath.Join(dir, "tls.test", "ca.pem"), certPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "tls.test/library/app:v1"), nil)
			if tc.wantErr {
				if err == nil || !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("error %v, want an unavailable certificate error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.ManifestDigest != img.ManifestDigest {
				t.Errorf("manifest %s, want %s", res.ManifestDigest, img.ManifestDigest)
			}
		})
	}
}

// A mirror with only "pull" never resolves a tag, but serves what is named
// by digest: the whole of a digest pull, and the config of a tag pull
// whose tag the server resolved (containerd's capabilities).
func TestMirrorCapabilities(t *testing.T) {
	img := smallImage(t, "caps", ocispec.Platform{}, false)
	mirror, server := newFakeReg(), newFakeReg()
	mirror.addImage("library/app", "v1", img)
	server.addImage("library/app", "v1", img)
	mirrorAddr, serverAddr := mirror.start(t), server.start(t)
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", "server = \"http://"+serverAddr+"\"\n[host.\"http://"+mirrorAddr+"\"]\n  capabilities = [\"pull\"]\n")
	c := newTestClient(dir)

	for _, tc := range []struct {
		ref                    string
		mirrorSeen, serverSeen []string // paths each got, in order
	}{
		{"reg.test/library/app:v1",
			[]string{"/v2/library/app/blobs/" + img.ConfigDigest.String()},
			[]string{"/v2/library/app/manifests/v1"}},
		{"reg.test/library/app@" + img.ManifestDigest.String(),
			[]string{"/v2/library/app/manifests/" + img.ManifestDigest.String(), "/v2/library/app/blobs/" + img.ConfigDigest.String()},
			nil},
	} {
		before, beforeServer := len(mirror.requests()), len(server.requests())
		res, err := c.Pull(context.Background(), mustRef(t, tc.ref), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		if res.ManifestDigest != img.ManifestDigest || string(res.ConfigData) != string(img.Config) {
			t.Errorf("%s: manifest %s", tc.ref, res.ManifestDigest)
		}
		paths := func(rs []seenRequest) (out []string) {
			for _, r := range rs {
				out = append(out, r.path)
			}
			return out
		}
		if got := paths(mirror.requests()[before:]); !reflect.DeepEqual(got, tc.mirrorSeen) {
			t.Errorf("%s: mirror got %q, want %q", tc.ref, got, tc.mirrorSeen)
		}
		if got := paths(server.requests()[beforeServer:]); !reflect.DeepEqual(got, tc.serverSeen) {
			t.Errorf("%s: server got %q, want %q", tc.ref, got, tc.serverSeen)
		}
	}
}

// Mirror headers from hosts.toml, the User-Agent and the manifest Accept
// list reach the registry.
func TestMirrorRequestHeaders(t *testing.T) {
	img := smallImage(t, "hdr", ocispec.Platform{}, false)
	mirror := newFakeReg()
	mirror.addImage("library/app", "v1", img)
	addr := mirror.start(t)
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", "server = \"http://"+closedAddr(t)+"\"\n[host.\"http://"+addr+"\"]\n[host.\"http://"+addr+"\".header]\n  X-Mirror-Key = \"k1\"\n")
	if _, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "reg.test/library/app:v1"), nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range mirror.requests() {
		if r.header.Get("X-Mirror-Key") != "k1" || r.header.Get("User-Agent") != "crid" {
			t.Errorf("%s: headers %v", r.path, r.header)
		}
		if strings.Contains(r.path, "/manifests/") {
			accept := r.header.Get("Accept")
			for _, mt := range []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, MediaTypeDockerManifestList, MediaTypeDockerManifest} {
				if !strings.Contains(accept, mt) {
					t.Errorf("Accept %q lacks %s", accept, mt)
				}
			}
		}
	}
}
