package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Credentials mirror CRI's AuthConfig.
type Credentials struct {
	Username      string
	Password      string
	Auth          string // base64 "user:password"
	IdentityToken string // OAuth2 refresh token
	RegistryToken string // bearer token sent as is
}

// Key identifies the credentials (hashed) so pulls with different ones are
// never shared; "" for anonymous.
func (c *Credentials) Key() string {
	if c == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(c.Username + "\x00" + c.Password + "\x00" + c.Auth + "\x00" + c.IdentityToken + "\x00" + c.RegistryToken))
	return hex.EncodeToString(sum[:8])
}

func (c *Credentials) userPass() (string, string, bool) {
	if c == nil {
		return "", "", false
	}
	if c.Username != "" || c.Password != "" {
		return c.Username, c.Password, true
	}
	if c.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(c.Auth)
		if err == nil {
			if u, p, ok := strings.Cut(string(raw), ":"); ok {
				return u, p, true
			}
		}
	}
	return "", "", false
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	configDir string
	platform  Platform
	log       *slog.Logger
	userAgent string

	mu      sync.Mutex
	clients map[string]*http.Client // per endpoint TLS settings
	tokens  map[string]token        // by host, scope and credentials
}

type token struct {
	value   string
	expires time.Time
}

// Platform selects an image from a multi-platform index.
type Platform struct{ OS, Architecture, Variant string }

// ParsePlatform reads "os/arch[/variant]".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("platform %q is not os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// NewClient returns a client reading mirrors from configDir (certs.d layout).
func NewClient(configDir string, platform Platform, log *slog.Logger) *Client {
	return &Client{
		configDir: configDir, platform: platform, log: log, userAgent: "crid",
		clients: map[string]*http.Client{}, tokens: map[string]token{},
	}
}

func (c *Client) httpClient(ep *Endpoint) *http.Client {
	key := ep.URL.Scheme + "://" + ep.URL.Host
	switch {
	case ep.TLS != nil && ep.tlsKey != "":
		key += "|" + ep.tlsKey
	case ep.TLS != nil:
		key += fmt.Sprintf("|%v|%p", ep.TLS.InsecureSkipVerify, ep.TLS.RootCAs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc := c.clients[key]; hc != nil {
		return hc
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       ep.TLS,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	hc := &http.Client{Transport: tr}
	c.clients[key] = hc
	return hc
}

// statusError is a non-2xx answer.
type statusError struct {
	code int
	url  string
	body string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.url, http.StatusText(e.code))
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

func (e *statusError) Unwrap() error {
	switch {
	case e.code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case e.code == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case e.code == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case e.code == http.StatusTooManyRequests:
		return errdefs.ErrResourceExhausted
	case e.code >= 500:
		return errdefs.ErrUnavailable
	}
	return errdefs.ErrInvalidArgument
}

func transient(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusTooManyRequests || se.code >= 500
	}
	return errors.Is(err, errdefs.ErrUnavailable)
}

const maxAttempts = 3

// get performs a GET with auth and retries on transient failures. The caller
// closes the body of a returned response, which is always 2xx.
func (c *Client) get(ctx context.Context, ep *Endpoint, path, repo string, accept []string, creds *Credentials) (*http.Response, error) {
	u := *ep.URL
	u.Path = ep.apiBase() + path
	// containerd's convention: a mirror learns which registry it stands in
	// for from ?ns=<registry host>.
	if ep.Mirror && ep.ns != "" && ep.ns != ep.URL.Host {
		u.RawQuery = "ns=" + url.QueryEscape(ep.ns)
	}
	var lastErr error
	backoff := 200 * time.Millisecond
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		resp, err := c.getOnce(ctx, ep, u.String(), repo, accept, creds)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if !transient(err) || attempt == maxAttempts || ctx.Err() != nil {
			break
		}
		c.log.Debug("registry request failed; retrying", "url", u.String(), "attempt", attempt, "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff *= 2
	}
	return nil, lastErr
}

func (c *Client) getOnce(ctx context.Context, ep *Endpoint, rawURL, repo string, accept []string, creds *Credentials) (*http.Response, error) {
	scope := "repository:" + repo + ":pull"
	tokKey := ep.URL.Host + "|" + scope + "|" + creds.Key()
	authz := ""
	c.mu.Lock()
	if t, ok := c.tokens[tokKey]; ok && time.Now().Before(t.expires) {
		authz = "Bearer " + t.value
	}
	c.mu.Unlock()
	if authz == "" && creds != nil && creds.RegistryToken != "" {
		authz = "Bearer " + creds.RegistryToken
	}
	for round := 0; round < 2; round++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, fmt.Errorf("build request %s: %w", rawURL, err)
		}
		for k, vs := range ep.Header {
			req.Header[k] = vs
		}
		req.Header.Set("User-Agent", c.userAgent)
		if len(accept) > 0 {
			req.Header.Set("Accept", strings.Join(accept, ", "))
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := c.httpClient(ep).Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s: %v: %w", rawURL, err, errdefs.ErrUnavailable)
		}
		if resp.StatusCode/100 == 2 {
			return resp, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		serr := &statusError{code: resp.StatusCode, url: rawURL, body: strings.TrimSpace(string(body))}
		if resp.StatusCode != http.StatusUnauthorized || round > 0 {
			return nil, serr
		}
		next, err := c.authorize(ctx, ep, resp.Header.Get("WWW-Authenticate"), scope, tokKey, creds)
		if err != nil {
			return nil, err
		}
		if next == "" {
			return nil, serr
		}
		authz = next
	}
	return nil, fmt.Errorf("%s: still unauthorized: %w", rawURL, errdefs.ErrUnauthenticated)
}

// authorize answers a 401 challenge with an Authorization header value.
func (c *Client) authorize(ctx context.Context, ep *Endpoint, challenge, scope, tokKey string, creds *Credentials) (string, error) {
	scheme, params := parseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		user, pass, ok := creds.userPass()
		if !ok {
			return "", nil
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
	case "bearer":
		if params["scope"] != "" {
			scope = params["scope"]
		}
		tok, err := c.fetchToken(ctx, ep, params["realm"], params["service"], scope, creds)
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		c.tokens[tokKey] = tok
		c.mu.Unlock()
		return "Bearer " + tok.value, nil
	}
	return "", nil
}

func (c *Client) fetchToken(ctx context.Context, ep *Endpoint, realm, service, scope string, creds *Credentials) (token, error) {
	ru, err := url.Parse(realm)
	if err != nil || ru.Host == "" {
		return token{}, fmt.Errorf("registry %s sent a bad token realm %q: %w", ep.URL.Host, realm, errdefs.ErrUnauthenticated)
	}
	var req *http.Request
	if creds != nil && creds.IdentityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {creds.IdentityToken}, "service": {service}, "scope": {scope}, "client_id": {"crid"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, ru.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := ru.Query()
		if service != "" {
			q.Set("service", service)
		}
		q.Set("scope", scope)
		ru.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
		if user, pass, ok := creds.userPass(); ok && err == nil {
			req.SetBasicAuth(user, pass)
		}
	}
	if err != nil {
		return token{}, fmt.Errorf("token request: %w", err)
	}
	resp, err := c.httpClient(&Endpoint{URL: ru, TLS: ep.TLS, tlsKey: ep.tlsKey}).Do(req)
	if err != nil {
		return token{}, fmt.Errorf("token from %s: %v: %w", ru.Host, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return token{}, fmt.Errorf("token from %s: %w", ru.Host, &statusError{code: resp.StatusCode, url: ru.Host + ru.Path})
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return token{}, fmt.Errorf("token from %s: %v: %w", ru.Host, err, errdefs.ErrUnauthenticated)
	}
	t := token{value: body.Token, expires: time.Now().Add(time.Duration(max(body.ExpiresIn, 60)-10) * time.Second)}
	if t.value == "" {
		t.value = body.AccessToken
	}
	if t.value == "" {
		return token{}, fmt.Errorf("token from %s: empty: %w", ru.Host, errdefs.ErrUnauthenticated)
	}
	return t, nil
}

// parseChallenge splits `Bearer realm="...",service="..."`.
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k], rest = v[1:end+1], v[end+2:]
		} else {
			val, r, _ := strings.Cut(v, ",")
			params[k], rest = strings.TrimSpace(val), r
		}
	}
	return scheme, params
}
