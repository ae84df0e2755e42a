// Package registry is crid's client for the OCI distribution API: endpoint
// selection from containerd-style hosts.toml files, authentication, and
// verified fetching of manifests and blobs.
package registry

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Endpoint is one place a registry host's content can be fetched from.
type Endpoint struct {
	URL          *url.URL // scheme, host and base path (without /v2)
	Pull         bool     // may serve blobs and manifests by digest
	Resolve      bool     // may resolve tags
	OverridePath bool     // URL path is the API root as-is (no /v2 added)
	Mirror       bool     // not the registry itself
	Header       http.Header
	TLS          *tls.Config

	ns     string // registry host a mirror stands in for (its ?ns=)
	tlsKey string // identifies TLS settings across Endpoints calls
}

// apiBase returns the URL path prefix of the distribution API.
func (e *Endpoint) apiBase() string {
	p := strings.TrimSuffix(e.URL.Path, "/")
	if e.OverridePath || strings.HasSuffix(p, "/v2") {
		return p
	}
	return p + "/v2"
}

type hostsFile struct {
	Server       string               `toml:"server"`
	Capabilities []string             `toml:"capabilities"`
	SkipVerify   bool                 `toml:"skip_verify"`
	CA           any                  `toml:"ca"`
	OverridePath bool                 `toml:"override_path"`
	Header       map[string]any       `toml:"header"`
	Host         map[string]hostEntry `toml:"host"`
}

type hostEntry struct {
	Capabilities []string       `toml:"capabilities"`
	SkipVerify   bool           `toml:"skip_verify"`
	CA           any            `toml:"ca"`
	OverridePath bool           `toml:"override_path"`
	Header       map[string]any `toml:"header"`
	Client       any            `toml:"client"`
}

var hostTable = regexp.MustCompile(`(?m)^\s*\[\s*host\s*\.\s*("([^"]+)"|'([^']+)')`)

// Endpoints returns where host's content is fetched from: the mirrors of
// <configDir>/<host>/hosts.toml (else <configDir>/_default/hosts.toml) in
// file order, then the server. Without a file: the host itself over HTTPS,
// or plain HTTP for loopback hosts.
func Endpoints(configDir, host string) ([]*Endpoint, error) {
	if configDir != "" {
		for _, dir := range []string{hostDirName(host), "_default"} {
			path := filepath.Join(configDir, dir, "hosts.toml")
			data, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			eps, err := parseHosts(data, host, filepath.Join(configDir, dir))
			if err != nil {
				return nil, fmt.Errorf("registry hosts file %s: %w", path, err)
			}
			return eps, nil
		}
	}
	return []*Endpoint{defaultServer(host)}, nil
}

// hostDirName is the certs.d directory name of a host (containerd's form).
func hostDirName(host string) string {
	if host == "docker.io" {
		return "docker.io"
	}
	return host
}

func defaultServer(host string) *Endpoint {
	u := &url.URL{Scheme: "https", Host: host}
	if host == "docker.io" {
		u.Host = "registry-1.docker.io"
	}
	if isLoopback(host) {
		u.Scheme = "http"
	}
	return &Endpoint{URL: u, Pull: true, Resolve: true}
}

func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func parseHosts(data []byte, host, dir string) ([]*Endpoint, error) {
	var f hostsFile
	dec := toml.NewDecoder(strings.NewReader(string(data))).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	var eps []*Endpoint
	// go-toml maps lose order; the file's order of [host."..."] tables is
	// the order mirrors are tried in. Hosts written otherwise (dotted keys,
	// inline tables) follow, sorted, rather than being dropped.
	seen := map[string]bool{}
	var names []string
	for _, m := range hostTable.FindAllStringSubmatch(string(data), -1) {
		if name := m[2] + m[3]; !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	var rest []string
	for name := range f.Host {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range append(names, rest...) {
		h, ok := f.Host[name]
		if !ok {
			continue
		}
		ep, err := newEndpoint(name, h.Capabilities, h.SkipVerify, h.CA, h.OverridePath, h.Header, dir)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", name, err)
		}
		ep.Mirror, ep.ns = true, host
		eps = append(eps, ep)
	}
	server := defaultServer(host)
	if f.Server != "" {
		ep, err := newEndpoint(f.Server, f.Capabilities, f.SkipVerify, f.CA, f.OverridePath, f.Header, dir)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		server = ep
	} else if f.SkipVerify || f.CA != nil {
		tlsCfg, key, err := tlsConfig(f.SkipVerify, f.CA, dir)
		if err != nil {
			return nil, err
		}
		server.TLS, server.tlsKey = tlsCfg, key
	}
	return append(eps, server), nil
}

func newEndpoint(raw string, caps []string, skipVerify bool, ca any, overridePath bool, header map[string]any, dir string) (*Endpoint, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an http(s) URL: %w", raw, errdefs.ErrInvalidArgument)
	}
	ep := &Endpoint{URL: u, OverridePath: overridePath, Header: http.Header{}}
	if caps == nil {
		caps = []string{"pull", "resolve"}
	}
	for _, c := range caps {
		switch c {
		case "pull":
			ep.Pull = true
		case "resolve":
			ep.Resolve = true
		case "push":
		default:
			return nil, fmt.Errorf("unknown capability %q: %w", c, errdefs.ErrInvalidArgument)
		}
	}
	for k, v := range header {
		switch vv := v.(type) {
		case string:
			ep.Header.Add(k, vv)
		case []any:
			for _, x := range vv {
				ep.Header.Add(k, fmt.Sprint(x))
			}
		default:
			return nil, fmt.Errorf("header %q must be a string or list: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if ep.TLS, ep.tlsKey, err = tlsConfig(skipVerify, ca, dir); err != nil {
		return nil, err
	}
	return ep, nil
}

// tlsConfig also returns a key naming the settings (skip_verify and the CA
// files' contents), equal across calls for equal settings.
func tlsConfig(skipVerify bool, ca any, dir string) (*tls.Config, string, error) {
	var files []string
	switch v := ca.(type) {
	case nil:
	case string:
		files = []string{v}
	case []any:
		for _, x := range v {
			files = append(files, fmt.Sprint(x))
		}
	default:
		return nil, "", fmt.Errorf("ca must be a path or a list of paths: %w", errdefs.ErrInvalidArgument)
	}
	if !skipVerify && len(files) == 0 {
		return nil, "", nil
	}
	key := sha256.New()
	fmt.Fprintf(key, "skip_verify=%v\n", skipVerify)
	cfg := &tls.Config{InsecureSkipVerify: skipVerify, MinVersion: tls.VersionTLS12}
	if len(files) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range files {
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, "", fmt.Errorf("read ca %s: %w", f, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("ca %s holds no PEM certificate: %w", f, errdefs.ErrInvalidArgument)
			}
			key.Write(pem)
		}
		cfg.RootCAs = pool
	}
	return cfg, hex.EncodeToString(key.Sum(nil)), nil
}
