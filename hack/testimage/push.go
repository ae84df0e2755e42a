package testimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
)

// Pusher uploads images to a registry over plain HTTP (a local test
// registry on 127.0.0.1, or a Server) with the distribution API: HEAD to
// skip blobs the repository has, monolithic upload (POST then PUT
// ?digest=), manifests PUT by digest and by tag.
type Pusher struct {
	Host           string // host:port
	User, Password string // basic auth, when User is set
	Client         *http.Client
}

func (p *Pusher) do(ctx context.Context, method, u string, body []byte, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p.User != "" {
		req.SetBasicAuth(p.User, p.Password)
	}
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return resp, nil
}

func failure(what string, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return fmt.Errorf("%s: %s: %s", what, resp.Status, bytes.TrimSpace(msg))
}

func (p *Pusher) base(repo string) string { return "http://" + p.Host + "/v2/" + repo }

// HasBlob reports whether repo has the blob d.
func (p *Pusher) HasBlob(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	resp, err := p.do(ctx, http.MethodHead, p.base(repo)+"/blobs/"+d.String(), nil, "")
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("HEAD blob %s in %s: %s", d, repo, resp.Status)
}

// PushBlob uploads data to repo as blob d unless repo has it. A registry
// refuses data whose digest is not d (400 DIGEST_INVALID).
func (p *Pusher) PushBlob(ctx context.Context, repo string, d digest.Digest, data []byte) error {
	if ok, err := p.HasBlob(ctx, repo, d); err != nil || ok {
		return err
	}
	resp, err := p.do(ctx, http.MethodPost, p.base(repo)+"/blobs/uploads/", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return failure(fmt.Sprintf("start upload of %s to %s", d, repo), resp)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("upload location %q: %v", resp.Header.Get("Location"), err)
	}
	loc = resp.Request.URL.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	put, err := p.do(ctx, http.MethodPut, loc.String(), data, "application/octet-stream")
	if err != nil {
		return err
	}
	defer put.Body.Close()
	if put.StatusCode != http.StatusCreated {
		return failure(fmt.Sprintf("upload %s to %s", d, repo), put)
	}
	return nil
}

// PushManifest puts a manifest or index under ref (a tag or a digest).
func (p *Pusher) PushManifest(ctx context.Context, repo, ref, mediaType string, data []byte) error {
	resp, err := p.do(ctx, http.MethodPut, p.base(repo)+"/manifests/"+ref, data, mediaType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return failure(fmt.Sprintf("put manifest %s:%s", repo, ref), resp)
	}
	return nil
}

// Push uploads b's layers and config, then its manifest by digest and under
// each tag.
func (p *Pusher) Push(ctx context.Context, repo string, b *Built, tags ...string) error {
	for _, l := range b.Layers {
		if err := p.PushBlob(ctx, repo, l.Digest, b.Blobs[l.Digest]); err != nil {
			return err
		}
	}
	if err := p.PushBlob(ctx, repo, b.ConfigDigest, b.Config); err != nil {
		return err
	}
	for _, ref := range append([]string{b.ManifestDigest.String()}, tags...) {
		if err := p.PushManifest(ctx, repo, ref, b.MediaType, b.Manifest); err != nil {
			return err
		}
	}
	return nil
}

// PushIndex uploads every image of idx, then idx by digest and under each
// tag.
func (p *Pusher) PushIndex(ctx context.Context, repo string, idx *BuiltIndex, tags ...string) error {
	for _, b := range idx.Images {
		if err := p.Push(ctx, repo, b); err != nil {
			return err
		}
	}
	for _, ref := range append([]string{idx.Digest.String()}, tags...) {
		if err := p.PushManifest(ctx, repo, ref, idx.mediaType(), idx.Data); err != nil {
			return err
		}
	}
	return nil
}
