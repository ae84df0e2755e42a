// Package registry is crid's client for the OCI distribution API: endpoint
// selection from containerd-style hosts.toml files, authentication, and
// verified fetching of manifests and blobs.
package registry

import (
	"crypto/tls"
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
	"time"

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
	DialTimeout  time.Duration // 0: the client's default

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

// hostOptions are the keys a host table and the top level share
// (containerd's hostFileConfig).
type hostOptions struct {
	Capabilities []string       `toml:"capabilities"`
	SkipVerify   bool           `toml:"skip_verify"`
	CA           any            `toml:"ca"`     // path or list of paths
	Client       any            `toml:"client"` // path, list of paths, or list of [cert, key]
	OverridePath bool           `toml:"override_path"`
	Header       map[string]any `toml:"header"`
	DialTimeout  string         `toml:"dial_timeout"`
}

type hostsFile struct {
	Server       string                 `toml:"server"`
	Capabilities []string               `toml:"capabilities"`
	SkipVerify   bool                   `toml:"skip_verify"`
	CA           any                    `toml:"ca"`
	Client       any                    `toml:"client"`
	OverridePath bool                   `toml:"override_path"`
	Header       map[string]any         `toml:"header"`
	DialTimeout  string                 `toml:"dial_timeout"`
	Host         map[string]hostOptions `toml:"host"`
}

var hostTable = regexp.MustCompile(`(?m)^\s*\[\s*host\s*\.\s*("([^"]+)"|'([^']+)')`)

// Endpoints returns where host's content is fetched from, as containerd
// reads its certs.d layout: the first directory of <configDir>/<host>_<port>_,
// <configDir>/<host[:port]> and <configDir>/_default that exists is the
// host's. Its hosts.toml lists mirrors, tried in file order, then the
// server; without a hosts.toml its Docker-style certificate files (*.crt,
// *.cert and *.key) apply to the host itself. Without a directory: the host
// itself over HTTPS (docker.io: registry-1.docker.io), or plain HTTP for
// loopback hosts not on port 443.
func Endpoints(configDir, host string) ([]*Endpoint, error) {
	if host == "" || host == "." || host == ".." || strings.ContainsAny(host, `/\`) {
		return nil, fmt.Errorf("registry host %q: %w", host, errdefs.ErrInvalidArgument)
	}
	if configDir == "" {
		return []*Endpoint{defaultServer(host)}, nil
	}
	dir, err := hostDir(configDir, host)
	if err != nil || dir == "" {
		return []*Endpoint{defaultServer(host)}, err
	}
	path := filepath.Join(dir, "hosts.toml")
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && len(strings.TrimSpace(string(data))) == 0):
		ep, err := certFilesServer(dir, host)
		if err != nil {
			return nil, fmt.Errorf("registry certificates in %s: %w", dir, err)
		}
		return []*Endpoint{ep}, nil
	case err != nil:
		return nil, fmt.Errorf("read registry hosts file %s: %w", path, err)
	}
	eps, err := parseHosts(data, host, dir)
	if err != nil {
		return nil, fmt.Errorf("registry hosts file %s: %w", path, err)
	}
	return eps, nil
}

// hostDir returns the first existing certs.d directory for host, or "".
func hostDir(configDir, host string) (string, error) {
	var names []string
	if i := strings.LastIndex(host, ":"); i > 0 && !strings.HasSuffix(host, "]") {
		names = append(names, host[:i]+"_"+host[i+1:]+"_") // containerd's port form
	}
	for _, name := range append(names, host, "_default") {
		dir := filepath.Join(configDir, name)
		fi, err := os.Stat(dir)
		switch {
		case err == nil && fi.IsDir():
			return dir, nil
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("registry hosts directory %s: %w", dir, err)
		}
	}
	return "", nil
}

func defaultServer(host string) *Endpoint {
	u := &url.URL{Scheme: "https", Host: host}
	if host == "docker.io" {
		u.Host = "registry-1.docker.io"
	}
	if isLoopback(host) {
		if _, port, _ := net.SplitHostPort(host); port != "443" {
			u.Scheme = "http"
		}
	}
	return &Endpoint{URL: u, Pull: true, Resolve: true, ns: host}
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
		ep, err := newEndpoint(name, h, dir)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", name, err)
		}
		ep.Mirror, ep.ns = true, host
		eps = append(eps, ep)
	}
	top := hostOptions{Capabilities: f.Capabilities, SkipVerify: f.SkipVerify, CA: f.CA, Client: f.Client,
		OverridePath: f.OverridePath, Header: f.Header, DialTimeout: f.DialTimeout}
	server := f.Server
	if server == "" {
		server = defaultServer(host).URL.String()
	}
	ep, err := newEndpoint(server, top, dir)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	ep.ns = host
	return append(eps, ep), nil
}

func newEndpoint(raw string, o hostOptions, dir string) (*Endpoint, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an http(s) URL: %w", raw, errdefs.ErrInvalidArgument)
	}
	u.RawQuery, u.Fragment = "", ""
	ep := &Endpoint{URL: u, OverridePath: o.OverridePath, Header: http.Header{}}
	caps := o.Capabilities
	if caps == nil {
		caps = []string{"pull", "resolve"}
	}
	for _, c := range caps {
		switch strings.ToLower(c) {
		case "pull":
			ep.Pull = true
		case "resolve":
			ep.Resolve = true
		case "push":
		default:
			return nil, fmt.Errorf("unknown capability %q (want pull, resolve or push): %w", c, errdefs.ErrInvalidArgument)
		}
	}
	for k, v := range o.Header {
		switch vv := v.(type) {
		case string:
			ep.Header.Add(k, vv)
		case []any:
			for _, x := range vv {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("header %q must be a string or list of strings: %w", k, errdefs.ErrInvalidArgument)
				}
				ep.Header.Add(k, s)
			}
		default:
			return nil, fmt.Errorf("header %q must be a string or list of strings: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if o.DialTimeout != "" {
		d, err := time.ParseDuration(o.DialTimeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("dial_timeout %q is not a positive duration: %w", o.DialTimeout, errdefs.ErrInvalidArgument)
		}
		ep.DialTimeout = d
	}
	cas, err := stringList("ca", o.CA, dir)
	if err != nil {
		return nil, err
	}
	pairs, err := clientPairs(o.Client, dir)
	if err != nil {
		return nil, err
	}
	if ep.TLS, ep.tlsKey, err = tlsConfig(o.SkipVerify, cas, pairs); err != nil {
		return nil, err
	}
	return ep, nil
}

// stringList reads a path or a list of paths, made absolute against dir.
func stringList(key string, v any, dir string) ([]string, error) {
	var out []string
	switch v := v.(type) {
	case nil:
	case string:
		out = []string{absPath(v, dir)}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s must be a path or a list of paths: %w", key, errdefs.ErrInvalidArgument)
			}
			out = append(out, absPath(s, dir))
		}
	default:
		return nil, fmt.Errorf("%s must be a path or a list of paths: %w", key, errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// clientPairs reads containerd's `client`: a file holding certificate and
// key, a list of such files, or a list of [certificate, key] pairs.
func clientPairs(v any, dir string) ([][2]string, error) {
	bad := fmt.Errorf("client must be a path, a list of paths or a list of [cert, key] pairs: %w", errdefs.ErrInvalidArgument)
	var out [][2]string
	switch v := v.(type) {
	case nil:
	case string:
		out = append(out, [2]string{absPath(v, dir), ""})
	case []any:
		for _, x := range v {
			switch x := x.(type) {
			case string:
				out = append(out, [2]string{absPath(x, dir), ""})
			case []any:
				if len(x) != 2 {
					return nil, bad
				}
				cert, ok1 := x[0].(string)
				key, ok2 := x[1].(string)
				if !ok1 || !ok2 {
					return nil, bad
				}
				out = append(out, [2]string{absPath(cert, dir), absPath(key, dir)})
			default:
				return nil, bad
			}
		}
	default:
		return nil, bad
	}
	return out, nil
}

func absPath(p, dir string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// certFilesServer is the default server of host with the TLS files of a
// Docker-style certs.d directory: *.crt are CAs, each *.cert needs its *.key.
func certFilesServer(dir, host string) (*Endpoint, error) {
	ep := defaultServer(host)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var cas []string
	var pairs [][2]string
	for _, e := range entries {
		name := e.Name()
		switch filepath.Ext(name) {
		case ".crt":
			cas = append(cas, filepath.Join(dir, name))
		case ".cert":
			key := strings.TrimSuffix(name, ".cert") + ".key"
			if _, err := os.Stat(filepath.Join(dir, key)); err != nil {
				return nil, fmt.Errorf("client certificate %s has no key %s: %w", name, key, errdefs.ErrInvalidArgument)
			}
			pairs = append(pairs, [2]string{filepath.Join(dir, name), filepath.Join(dir, key)})
		case ".key":
			cert := strings.TrimSuffix(name, ".key") + ".cert"
			if _, err := os.Stat(filepath.Join(dir, cert)); err != nil {
				return nil, fmt.Errorf("client key %s has no certificate %s: %w", name, cert, errdefs.ErrInvalidArgument)
			}
		}
	}
	if ep.TLS, ep.tlsKey, err = tlsConfig(false, cas, pairs); err != nil {
		return nil, err
	}
	return ep, nil
}
