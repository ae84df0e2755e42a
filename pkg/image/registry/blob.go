package registry

import (
	"context"
	"fmt"
	"hash"
	"io"
	"net/http"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// FetchBlob streams a blob from the first endpoint that may pull and has
// it, following redirects to blob storage. The reader verifies size and
// digest: its last Read returns an error wrapping ErrInvalidArgument ("digest
// mismatch", "truncated", "larger"), not io.EOF, when the content does not
// match desc, and one wrapping ErrUnavailable when the transfer breaks or
// stalls.
func (c *Client) FetchBlob(ctx context.Context, ref reference.Named, creds *Credentials, desc ocispec.Descriptor) (io.ReadCloser, error) {
	t, err := c.target(ref, creds)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	var rc io.ReadCloser
	err = c.each(ctx, t, false, func(ep *Endpoint) error {
		var err error
		rc, err = c.openBlob(ctx, ep, t, desc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blob %s of %q: %w", desc.Digest, ref.String(), err)
	}
	return rc, nil
}

// FetchBlobBytes reads a small blob (a config) whole, verified against
// desc; limit (MaxConfigSize when <= 0) bounds its size. An endpoint that
// serves wrong content is passed over for the next.
func (c *Client) FetchBlobBytes(ctx context.Context, ref reference.Named, creds *Credentials, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	t, err := c.target(ref, creds)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	data, err := c.blobBytes(ctx, t, desc, limit)
	if err != nil {
		return nil, fmt.Errorf("blob %s of %q: %w", desc.Digest, ref.String(), err)
	}
	return data, nil
}

func (c *Client) blobBytes(ctx context.Context, t *target, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = MaxConfigSize
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, over the %d limit: %w", desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	var data []byte
	err := c.each(ctx, t, false, func(ep *Endpoint) error {
		rc, err := c.openBlob(ctx, ep, t, desc)
		if err != nil {
			return err
		}
		defer rc.Close()
		data, err = io.ReadAll(rc) // bounded: the reader fails past desc.Size
		return err
	})
	return data, err
}

func (c *Client) openBlob(ctx context.Context, ep *Endpoint, t *target, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("blob %s has negative size: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	resp, err := c.open(ctx, ep, t, "/"+t.repo+"/blobs/"+desc.Digest.String(), nil)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != desc.Size && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s from %s: registry sends %d bytes, manifest says %d: %w", desc.Digest, ep.URL, resp.ContentLength, desc.Size, errdefs.ErrInvalidArgument)
	}
	return &verifyingReader{body: resp.Body, desc: desc, h: desc.Digest.Algorithm().Hash()}, nil
}

// verifyingReader checks a blob's size and digest as it is read.
type verifyingReader struct {
	body io.ReadCloser
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
	err  error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.body.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.desc.Size {
		v.err = fmt.Errorf("blob %s is larger than its %d bytes: %w", v.desc.Digest, v.desc.Size, errdefs.ErrInvalidArgument)
		return n, v.err
	}
	switch {
	case err == io.EOF:
		if v.n != v.desc.Size {
			v.err = fmt.Errorf("blob %s truncated: got %d of %d bytes: %w", v.desc.Digest, v.n, v.desc.Size, errdefs.ErrInvalidArgument)
		} else if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
			v.err = fmt.Errorf("blob digest mismatch: want %s, got %s: %w", v.desc.Digest, got, errdefs.ErrInvalidArgument)
		} else {
			v.err = io.EOF
		}
		return n, v.err
	case err != nil:
		v.err = fmt.Errorf("read blob %s: %w: %w", v.desc.Digest, err, errdefs.ErrUnavailable)
		return n, v.err
	}
	return n, nil
}

func (v *verifyingReader) Close() error { return v.body.Close() }

// match picks the manifest for the platform from an index: the exact
// variant (arm64's v8 and amd64's v1 are their default), else, when no
// variant is asked for, the first entry of the OS and architecture.
func (p Platform) match(manifests []ocispec.Descriptor) (ocispec.Descriptor, error) {
	want := normalVariant(p.Architecture, p.Variant)
	var fallback *ocispec.Descriptor
	for i, d := range manifests {
		if d.Platform == nil || d.Platform.OS != p.OS || d.Platform.Architecture != p.Architecture {
			continue
		}
		if normalVariant(d.Platform.Architecture, d.Platform.Variant) == want {
			return d, nil
		}
		if p.Variant == "" && fallback == nil {
			fallback = &manifests[i]
		}
	}
	if fallback != nil {
		return *fallback, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s/%s%s: %w", p.OS, p.Architecture, variantSuffix(p.Variant), errdefs.ErrNotFound)
}

func normalVariant(arch, v string) string {
	if (arch == "arm64" && v == "v8") || (arch == "amd64" && v == "v1") {
		return ""
	}
	return v
}

func variantSuffix(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}
