package registry

// Regression tests for bugs found in review: mirror ns, host table forms,
// transport reuse with a CA, and digests other than sha256.

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// containerd's convention: ns names the registry host of the reference
// (e.g. docker.io), so one mirror can proxy several registries.
func TestMirrorNamespaceIsRegistryHost(t *testing.T) {
	img := smallImage(t, "ns", ocispec.Platform{}, false)
	mirror := newFakeReg()
	mirror.addImage("library/app", "v1", img)
	addr := mirror.start(t)
	dir := t.TempDir()
	writeHosts(t, dir, "reg.test", "server = \"http://"+closedAddr(t)+"\"\n[host.\"http://"+addr+"\"]\n")
	if _, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "reg.test/library/app:v1"), nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range mirror.requests() {
		q, _ := url.ParseQuery(r.query)
		if q.Get("ns") != "reg.test" {
			t.Errorf("%s: ns=%q, want reg.test", r.path, q.Get("ns"))
		}
	}
}

// Valid TOML spellings of a host table other than a [host."..."] header
// must not silently drop the mirror.
func TestHostTableForms(t *testing.T) {
	for name, content := range map[string]string{
		"header":       "server = \"https://reg.test\"\n[host.\"https://m.test\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
		"dotted keys":  "server = \"https://reg.test\"\nhost.\"https://m.test\".capabilities = [\"pull\", \"resolve\"]\n",
		"inline table": "server = \"https://reg.test\"\nhost = { \"https://m.test\" = { capabilities = [\"pull\", \"resolve\"] } }\n",
		"sub-table":    "server = \"https://reg.test\"\n[host.\"https://m.test\".header]\nx-crid = \"1\"\n",
	} {
		dir := t.TempDir()
		writeHosts(t, dir, "reg.test", content)
		eps, err := Endpoints(dir, "reg.test")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(eps) != 2 || eps[0].URL.String() != "https://m.test" {
			t.Errorf("%s: %d endpoints, first %s; want the mirror then the server", name, len(eps), eps[0].URL)
		}
	}
}

// One transport per endpoint TLS setting, not one per call.
func TestHTTPClientReusedWithCA(t *testing.T) {
	cert, certPEM := selfSigned(t)
	reg := newFakeReg()
	img := smallImage(t, "reuse", ocispec.Platform{}, false)
	reg.addImage("library/app", "v1", img)
	srv := httptest.NewUnstartedServer(reg)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	writeHosts(t, dir, "tls.test", "server = \""+srv.URL+"\"\nca = \"ca.pem\"\n")
	if err := os.WriteFile(filepath.Join(dir, "tls.test", "ca.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(dir)
	ref := mustRef(t, "tls.test/library/app:v1")
	for i := 0; i < 3; i++ {
		if _, err := c.Pull(context.Background(), ref, nil); err != nil {
			t.Fatal(err)
		}
		rc, err := c.FetchBlob(context.Background(), ref, nil, img.Layers[0])
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	c.mu.Lock()
	n := len(c.clients)
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("%d http clients after 6 calls to one endpoint, want 1", n)
	}
}

// A reference may name its manifest by any available digest algorithm.
func TestPullBySHA512Digest(t *testing.T) {
	img := smallImage(t, "sha512", ocispec.Platform{}, false)
	reg := newFakeReg()
	reg.addImage("library/app", "", img)
	d := digest.SHA512.FromBytes(img.Manifest)
	reg.addRaw("library/app", d.String(), img.MediaType, img.Manifest)
	host := reg.start(t)
	res, err := newTestClient("").Pull(context.Background(), mustRef(t, host+"/library/app@"+d.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.TopDigest != d {
		t.Errorf("top digest %s, want %s", res.TopDigest, d)
	}
}
