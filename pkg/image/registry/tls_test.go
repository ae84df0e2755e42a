package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// clientCert makes a self-signed client certificate; it returns the PEM of
// the certificate and of its key.
func clientCert(t *testing.T) ([]byte, []byte) {
	t.Helper()
	certPEM, keyPEM, err := testimage.SelfSignedCert("crid test client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hosts.toml `client` certificates reach a registry that requires them.
func TestClientCertificates(t *testing.T) {
	serverCert, caPEM := selfSigned(t)
	certPEM, keyPEM := clientCert(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	reg := newFakeReg()
	img := smallImage(t, "mtls", ocispec.Platform{}, false)
	reg.addImage("library/app", "v1", img)
	srv := httptest.NewUnstartedServer(reg)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, client string
		ok           bool
	}{
		{"cert and key pair", `client = [["client.cert", "client.key"]]`, true},
		{"one file with both", `client = "both.pem"`, true},
		{"list of combined files", `client = ["both.pem"]`, true},
		{"no client certificate", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHosts(t, dir, "mtls.test", "server = \""+srv.URL+"\"\nca = \"ca.pem\"\n"+tc.client+"\n")
			writeFiles(t, filepath.Join(dir, "mtls.test"), map[string][]byte{
				"ca.pem": caPEM, "client.cert": certPEM, "client.key": keyPEM, "both.pem": append(append([]byte(nil), certPEM...), keyPEM...),
			})
			_, err := newTestClient(dir).Pull(context.Background(), mustRef(t, "mtls.test/library/app:v1"), nil)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, errdefs.ErrUnavailable) {
				t.Fatalf("error %v, want the handshake refused", err)
			}
		})
	}
}

// containerd's directory forms: host_port_ before host:port before
// _default, the first that exists wins; one without hosts.toml holds
// Docker-style certificate files for the host itself.
func TestHostDirectories(t *testing.T) {
	_, caPEM := selfSigned(t)
	certPEM, keyPEM := clientCert(t)
	mirror := func(name string) []byte { return []byte(`[host."https://` + name + `.test"]` + "\n") }
	for _, tc := range []struct {
		name   string
		host   string
		files  map[string]map[string][]byte // dir -> files
		mirror string                       // expected first endpoint host, "" for only the server
		check  func(t *testing.T, ep *Endpoint)
		errSub string
	}{
		{name: "port form wins", host: "reg.test:5000", mirror: "underscore",
			files: map[string]map[string][]byte{"reg.test_5000_": {"hosts.toml": mirror("underscore")}, "reg.test:5000": {"hosts.toml": mirror("colon")}}},
		{name: "colon form", host: "reg.test:5000", mirror: "colon",
			files: map[string]map[string][]byte{"reg.test:5000": {"hosts.toml": mirror("colon")}, "_default": {"hosts.toml": mirror("default")}}},
		{name: "a host directory without hosts.toml hides _default", host: "reg.test",
			files: map[string]map[string][]byte{"reg.test": {"ca.crt": caPEM}, "_default": {"hosts.toml": mirror("default")}},
			check: func(t *testing.T, ep *Endpoint) {
				if ep.TLS == nil || ep.TLS.RootCAs == nil || len(ep.TLS.Certificates) != 0 {
					t.Errorf("TLS %+v, want the CA only", ep.TLS)
				}
			}},
		{name: "docker client certificate", host: "reg.test",
			files: map[string]map[string][]byte{"reg.test": {"client.cert": certPEM, "client.key": keyPEM}},
			check: func(t *testing.T, ep *Endpoint) {
				if ep.TLS == nil || len(ep.TLS.Certificates) != 1 || ep.URL.String() != "https://reg.test" {
					t.Errorf("endpoint %s TLS %+v, want one client certificate", ep.URL, ep.TLS)
				}
			}},
		{name: "certificate without key", host: "reg.test",
			files:  map[string]map[string][]byte{"reg.test": {"client.cert": certPEM}},
			errSub: "has no key"},
		{name: "empty hosts.toml", host: "reg.test",
			files: map[string]map[string][]byte{"reg.test": {"hosts.toml": []byte("\n")}}},
		{name: "dial_timeout", host: "reg.test",
			files: map[string]map[string][]byte{"reg.test": {"hosts.toml": []byte("dial_timeout = \"2s\"\n")}},
			check: func(t *testing.T, ep *Endpoint) {
				if ep.DialTimeout != 2*time.Second {
					t.Errorf("dial timeout %v", ep.DialTimeout)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for sub, files := range tc.files {
				writeFiles(t, filepath.Join(dir, sub), files)
			}
			eps, err := Endpoints(dir, tc.host)
			if tc.errSub != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.errSub) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("error %v, want one saying %q and naming the directory", err, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			server := eps[len(eps)-1]
			if tc.mirror != "" && (len(eps) != 2 || eps[0].URL.Host != tc.mirror+".test") {
				t.Errorf("endpoints %v, want mirror %s first", eps, tc.mirror)
			}
			if tc.mirror == "" && len(eps) != 1 {
				t.Errorf("%d endpoints, want the server only", len(eps))
			}
			if tc.check != nil {
				tc.check(t, server)
			}
		})
	}
}

func TestHostsFileOptionErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, substr string }{
		{"client pair of three", `client = [["a", "b", "c"]]`, "client"},
		{"client of the wrong type", `client = 3`, "client"},
		{"ca list with a number", `ca = ["a.pem", 1]`, "ca"},
		{"bad dial_timeout", `dial_timeout = "soon"`, "dial_timeout"},
		{"header list with a number", "[header]\nx = [\"a\", 2]\n", "header"},
		{"unreadable client certificate", `client = "gone.pem"`, "gone.pem"},
	} {
		dir := t.TempDir()
		path := writeHosts(t, dir, "reg.test", tc.content+"\n")
		_, err := Endpoints(dir, "reg.test")
		if err == nil || !strings.Contains(err.Error(), tc.substr) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming %s and %q", tc.name, err, path, tc.substr)
		}
	}
	if _, err := Endpoints(t.TempDir(), "../etc"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("host with a slash: %v", err)
	}
}
