package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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

// cachedAuth is an Authorization header value that worked (basic) or was
// issued (bearer), until it expires.
type cachedAuth struct {
	header  string
	expires time.Time
}

// Cache keys: a bearer token is per endpoint host, scope and credentials;
// basic credentials are per endpoint host and credentials.
func bearerKey(ep *Endpoint, scope string, creds *Credentials) string {
	return "bearer|" + ep.URL.Scheme + "://" + ep.URL.Host + "|" + scope + "|" + creds.Key()
}

func basicKey(ep *Endpoint, creds *Credentials) string {
	return "basic|" + ep.URL.Scheme + "://" + ep.URL.Host + "|" + creds.Key()
}

// cachedAuthorization returns the Authorization header to send first.
func (c *Client) cachedAuthorization(ep *Endpoint, scope string, creds *Credentials) string {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []string{bearerKey(ep, scope, creds), basicKey(ep, creds)} {
		if a, ok := c.auth[k]; ok && now.Before(a.expires) {
			return a.header
		}
	}
	if creds != nil && creds.RegistryToken != "" {
		return "Bearer " + creds.RegistryToken
	}
	return ""
}

func (c *Client) cacheAuthorization(key, header string, ttl time.Duration) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.auth) >= 256 {
		for k, a := range c.auth {
			if !now.Before(a.expires) {
				delete(c.auth, k)
			}
		}
	}
	c.auth[key] = cachedAuth{header: header, expires: now.Add(ttl)}
}

func (c *Client) forgetAuthorization(key string) {
	c.mu.Lock()
	delete(c.auth, key)
	c.mu.Unlock()
}

// authorize answers a 401 challenge with an Authorization header value, or
// "" when it cannot (no credentials for Basic, an unknown scheme).
func (c *Client) authorize(ctx context.Context, ep *Endpoint, challenge, scope string, creds *Credentials) (string, error) {
	scheme, params := parseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		user, pass, ok := creds.userPass()
		if !ok {
			if creds != nil && creds.Auth != "" {
				return "", fmt.Errorf("credentials for %s: auth is not base64 of user:password: %w", ep.URL.Host, errdefs.ErrInvalidArgument)
			}
			return "", nil
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
	case "bearer":
		want := scope
		if params["scope"] != "" {
			want = params["scope"]
		}
		tok, ttl, err := c.fetchToken(ctx, ep, params["realm"], params["service"], want, creds)
		if err != nil {
			return "", err
		}
		c.cacheAuthorization(bearerKey(ep, scope, creds), "Bearer "+tok, ttl)
		return "Bearer " + tok, nil
	}
	return "", nil
}

// fetchToken gets a bearer token from a challenge's realm: a refresh-token
// grant (POST) with an identity token, else a GET with basic credentials if
// there are any, else an anonymous GET. It returns the token and how long
// to keep it.
func (c *Client) fetchToken(ctx context.Context, ep *Endpoint, realm, service, scope string, creds *Credentials) (string, time.Duration, error) {
	ru, err := url.Parse(realm)
	if err != nil || ru.Host == "" || (ru.Scheme != "http" && ru.Scheme != "https") {
		return "", 0, fmt.Errorf("registry %s sent a bad token realm %q: %w", ep.URL.Host, realm, errdefs.ErrUnauthenticated)
	}
	hc := c.httpClient(&Endpoint{URL: ru, TLS: ep.TLS, tlsKey: ep.tlsKey, DialTimeout: ep.DialTimeout})
	var resp *http.Response
	if creds != nil && creds.IdentityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {creds.IdentityToken},
			"service": {service}, "scope": {scope}, "client_id": {c.userAgent}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ru.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", 0, fmt.Errorf("token request to %s: %v: %w", ru.Host, err, errdefs.ErrUnauthenticated)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", c.userAgent)
		if resp, err = hc.Do(req); err != nil {
			return "", 0, fmt.Errorf("token from %s: %w: %w", ru.Host, err, errdefs.ErrUnavailable)
		}
		// Token servers without OAuth2 POST support: fall back to GET.
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			resp.Body.Close()
			resp = nil
		}
	}
	if resp == nil {
		q := ru.Query()
		if service != "" {
			q.Set("service", service)
		}
		q.Set("scope", scope)
		gu := *ru
		gu.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gu.String(), nil)
		if err != nil {
			return "", 0, fmt.Errorf("token request to %s: %v: %w", ru.Host, err, errdefs.ErrUnauthenticated)
		}
		req.Header.Set("User-Agent", c.userAgent)
		if user, pass, ok := creds.userPass(); ok {
			req.SetBasicAuth(user, pass)
		}
		if resp, err = hc.Do(req); err != nil {
			return "", 0, fmt.Errorf("token from %s: %w: %w", ru.Host, err, errdefs.ErrUnavailable)
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", 0, fmt.Errorf("token from %s: %w", ru.Host, &statusError{code: resp.StatusCode, method: resp.Request.Method,
			url: ru.Scheme + "://" + ru.Host + ru.Path, body: summarize(body)})
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", 0, fmt.Errorf("token from %s: %v: %w", ru.Host, err, errdefs.ErrUnauthenticated)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", 0, fmt.Errorf("token from %s: empty: %w", ru.Host, errdefs.ErrUnauthenticated)
	}
	// The token spec's default lifetime is 60s; keep a tenth as margin.
	ttl := 60 * time.Second
	if body.ExpiresIn > 0 {
		ttl = time.Duration(body.ExpiresIn) * time.Second
	}
	return tok, ttl - ttl/10, nil
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
