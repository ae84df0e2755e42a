package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	configDir string
	platform  Platform
	log       *slog.Logger
	userAgent string
	// stallTimeout aborts a response body that delivers no byte for this
	// long; backoff is the first retry's delay.
	stallTimeout time.Duration
	backoff      time.Duration

	mu      sync.Mutex
	clients map[string]*http.Client // one per endpoint and TLS settings
	auth    map[string]cachedAuth   // see bearerKey and basicKey
	down    map[string]time.Time    // mirrors that refused connections, until
}

const (
	maxAttempts     = 3                // per request, on transient errors
	maxRetryAfter   = 10 * time.Second // longest Retry-After honoured
	mirrorDownFor   = 30 * time.Second // a mirror that refused a connection is skipped this long
	defaultStall    = 2 * time.Minute
	defaultDialWait = 30 * time.Second
)

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

// NewClient returns a client reading mirrors from configDir (certs.d
// layout; "" for none) and choosing platform's image from indexes.
func NewClient(configDir string, platform Platform, log *slog.Logger) *Client {
	return &Client{
		configDir: configDir, platform: platform, log: log, userAgent: "crid",
		stallTimeout: defaultStall, backoff: 200 * time.Millisecond,
		clients: map[string]*http.Client{}, auth: map[string]cachedAuth{}, down: map[string]time.Time{},
	}
}

func (c *Client) httpClient(ep *Endpoint) *http.Client {
	key := ep.URL.Scheme + "://" + ep.URL.Host
	if ep.TLS != nil {
		key += "|" + ep.tlsKey
	}
	dial := defaultDialWait
	if ep.DialTimeout > 0 {
		dial = ep.DialTimeout
		key += "|" + dial.String()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc := c.clients[key]; hc != nil {
		return hc
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
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

// target is one reference's repository as requests see it.
type target struct {
	ref   reference.Named
	repo  string
	creds *Credentials
	eps   []*Endpoint
}

func (c *Client) target(ref reference.Named, creds *Credentials) (*target, error) {
	eps, err := Endpoints(c.configDir, reference.Domain(ref))
	if err != nil {
		return nil, err
	}
	return &target{ref: ref, repo: reference.Path(ref), creds: creds, eps: eps}, nil
}

// each calls try on the endpoints that may pull (and resolve, when asked),
// in order, until one succeeds. Mirrors that recently refused connections
// are passed over. It returns the last meaningful error.
func (c *Client) each(ctx context.Context, t *target, resolve bool, try func(ep *Endpoint) error) error {
	var errs []error
	for _, ep := range t.eps {
		if !ep.Pull || (resolve && !ep.Resolve) {
			continue
		}
		if ep.Mirror && c.isDown(ep) {
			errs = append(errs, fmt.Errorf("%s: skipped, it refused a connection recently: %w", ep.URL, errdefs.ErrUnavailable))
			continue
		}
		err := try(ep)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Debug("registry endpoint failed", "ref", t.ref.String(), "endpoint", ep.URL.String(), "error", err)
		errs = append(errs, err)
	}
	return lastMeaningful(errs)
}

// lastMeaningful prefers the server's answer (auth, not found) over a
// mirror's connection failure, so the caller sees why the pull failed.
func lastMeaningful(errs []error) error {
	if len(errs) == 0 {
		return fmt.Errorf("no endpoint may serve it: %w", errdefs.ErrNotFound)
	}
	last := errs[len(errs)-1]
	for i := len(errs) - 1; i >= 0; i-- {
		if !errors.Is(errs[i], errdefs.ErrUnavailable) {
			return errs[i]
		}
	}
	return last
}

func (c *Client) isDown(ep *Endpoint) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.down[ep.URL.Scheme+"://"+ep.URL.Host]
	return ok && time.Now().Before(until)
}

func (c *Client) markDown(ep *Endpoint) {
	c.mu.Lock()
	c.down[ep.URL.Scheme+"://"+ep.URL.Host] = time.Now().Add(mirrorDownFor)
	c.mu.Unlock()
}

// statusError is a non-2xx answer.
type statusError struct {
	code       int
	method     string
	url        string
	body       string        // the registry's error, summarized
	retryAfter time.Duration // from Retry-After, if any
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s: %d %s", e.url, e.code, http.StatusText(e.code))
	if e.method != "" {
		msg = e.method + " " + msg
	}
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

// summarize renders a registry's error body: the codes and messages of a
// distribution-spec error document, else the text itself, on one line.
func summarize(body []byte) string {
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		var parts []string
		for _, e := range doc.Errors {
			s := e.Code
			if e.Message != "" {
				s += " (" + e.Message + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(string(body)), " ")
}

func transient(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusTooManyRequests || se.code >= 500
	}
	return errors.Is(err, errdefs.ErrUnavailable)
}

// isDialError reports a failure to connect at all (refused, no route, DNS).
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect")
}

// do sends method for path (below the API root) to ep, with ep's headers,
// authentication and bounded retries with back-off on transient failures
// (connection errors, 429, 5xx; never 401, 403 or 404). A mirror that
// refuses the connection is not retried but skipped for a while. The
// response is 2xx; its body is the caller's to close.
func (c *Client) do(ctx context.Context, ep *Endpoint, t *target, method, path string, accept []string) (*http.Response, error) {
	u := *ep.URL
	u.Path = ep.apiBase() + path
	// containerd's convention: a mirror learns which registry it stands in
	// for from ?ns=<registry host>.
	if ep.Mirror && ep.ns != "" && ep.ns != ep.URL.Host {
		u.RawQuery = "ns=" + url.QueryEscape(ep.ns)
	}
	wait := c.backoff
	for attempt := 1; ; attempt++ {
		resp, err := c.doOnce(ctx, ep, t, method, u.String(), accept)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if ep.Mirror && isDialError(err) {
			c.markDown(ep)
			return nil, err
		}
		if !transient(err) || attempt == maxAttempts {
			return nil, err
		}
		delay := wait
		var se *statusError
		if errors.As(err, &se) && se.retryAfter > delay {
			delay = min(se.retryAfter, maxRetryAfter)
		}
		c.log.Debug("registry request failed; retrying", "url", u.String(), "attempt", attempt, "in", delay, "error", err)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		wait *= 2
	}
}

func (c *Client) doOnce(ctx context.Context, ep *Endpoint, t *target, method, rawURL string, accept []string) (*http.Response, error) {
	scope := "repository:" + t.repo + ":pull"
	authz := c.cachedAuthorization(ep, scope, t.creds)
	for round := 0; ; round++ {
		req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
		if err != nil {
			return nil, fmt.Errorf("build request %s: %v: %w", rawURL, err, errdefs.ErrInvalidArgument)
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
			return nil, fmt.Errorf("%s %s: %w: %w", method, rawURL, unwrapURLError(err), errdefs.ErrUnavailable)
		}
		if resp.StatusCode/100 == 2 {
			if round > 0 && strings.HasPrefix(authz, "Basic ") {
				c.cacheAuthorization(basicKey(ep, t.creds), authz, time.Hour)
			}
			return resp, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		serr := &statusError{code: resp.StatusCode, method: method, url: rawURL, body: summarize(body),
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
		if resp.StatusCode != http.StatusUnauthorized {
			return nil, serr
		}
		if round > 0 {
			// What was just issued or sent does not work: do not reuse it.
			c.forgetAuthorization(bearerKey(ep, scope, t.creds))
			c.forgetAuthorization(basicKey(ep, t.creds))
			return nil, serr
		}
		next, err := c.authorize(ctx, ep, resp.Header.Get("WWW-Authenticate"), scope, t.creds)
		if err != nil {
			return nil, err
		}
		if next == "" {
			return nil, serr
		}
		authz = next
	}
}

// unwrapURLError drops *url.Error's "Get \"...\":" prefix; the caller
// names the request itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// open GETs path from ep; the body of the response it returns fails with
// ErrUnavailable when no byte arrives for the client's stall timeout.
func (c *Client) open(ctx context.Context, ep *Endpoint, t *target, path string, accept []string) (*http.Response, error) {
	rctx, cancel := context.WithCancel(ctx)
	resp, err := c.do(rctx, ep, t, http.MethodGet, path, accept)
	if err != nil {
		cancel()
		return nil, err
	}
	g := &stallGuard{body: resp.Body, cancel: cancel, timeout: c.stallTimeout}
	g.timer = time.AfterFunc(c.stallTimeout, func() {
		g.stalled.Store(true)
		cancel()
	})
	resp.Body = g
	return resp, nil
}

// stallGuard cancels a response whose body stops delivering bytes.
type stallGuard struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	timeout time.Duration
	stalled atomic.Bool
}

func (g *stallGuard) Read(p []byte) (int, error) {
	n, err := g.body.Read(p)
	if n > 0 && !g.stalled.Load() {
		g.timer.Reset(g.timeout)
	}
	if err != nil && err != io.EOF && g.stalled.Load() {
		err = fmt.Errorf("no data for %s: %w", g.timeout, errdefs.ErrUnavailable)
	}
	return n, err
}

func (g *stallGuard) Close() error {
	g.timer.Stop()
	err := g.body.Close()
	g.cancel()
	return err
}
