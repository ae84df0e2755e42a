package testimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pusher uploads images to a registry over plain HTTP (a local test
// registry on 127.0.0.1).
type Pusher struct {
	Host           string // host:port
	User, Password string
	Client         *http.Client
}

func (p *Pusher) do(ctx context.Context, method, u string, body []byte, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
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
	return c.Do(req)
}

func (p *Pusher) pushBlob(ctx context.Context, repo string, d digest.Digest, data []byte) error {
	base := "http://" + p.Host + "/v2/" + repo
	resp, err := p.do(ctx, http.MethodHead, base+"/blobs/"+d.String(), nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = p.do(ctx, http.MethodPost, base+"/blobs/uploads/", nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s to %s: %s", d, repo, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("upload location: %w", err)
	}
	loc = (&url.URL{Scheme: "http", Host: p.Host}).ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = p.do(ctx, http.MethodPut, loc.String(), data, "application/octet-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("upload %s to %s: %s: %s", d, repo, resp.Status, msg)
	}
	return nil
}

func (p *Pusher) putManifest(ctx context.Context, repo, ref, mediaType string, data []byte) error {
	resp, err := p.do(ctx, http.MethodPut, "http://"+p.Host+"/v2/"+repo+"/manifests/"+ref, data, mediaType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("put manifest %s:%s: %s: %s", repo, ref, resp.Status, msg)
	}
	return nil
}

// Push uploads b's blobs and its manifest under each tag.
func (p *Pusher) Push(ctx context.Context, repo string, b *Built, tags ...string) error {
	for d, data := range b.Blobs {
		if err := p.pushBlob(ctx, repo, d, data); err != nil {
			return err
		}
	}
	refs := append([]string{b.ManifestDigest.String()}, tags...)
	for _, ref := range refs {
		if err := p.putManifest(ctx, repo, ref, b.MediaType, b.Manifest); err != nil {
			return err
		}
	}
	return nil
}

// PushIndex uploads every image of idx and the index under each tag.
func (p *Pusher) PushIndex(ctx context.Context, repo string, idx *BuiltIndex, tags ...string) error {
	for _, b := range idx.Images {
		if err := p.Push(ctx, repo, b); err != nil {
			return err
		}
	}
	for _, ref := range append([]string{idx.Digest.String()}, tags...) {
		if err := p.putManifest(ctx, repo, ref, ocispec.MediaTypeImageIndex, idx.Data); err != nil {
			return err
		}
	}
	return nil
}
