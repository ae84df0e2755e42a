package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Media types of Docker's manifest formats, beside ocispec's.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// Size limits for what is read into memory; layers are streamed.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
)

var manifestAccept = []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, MediaTypeDockerManifestList, MediaTypeDockerManifest}

// Resolved is an image reference resolved to one platform's manifest.
type Resolved struct {
	TopDigest      digest.Digest // what the reference names: index or manifest
	IndexDigests   []digest.Digest
	IndexData      map[digest.Digest][]byte
	ManifestDigest digest.Digest
	ManifestData   []byte
	Manifest       ocispec.Manifest
	ConfigData     []byte
}

// Pull resolves ref, follows an index to the client's platform, and
// fetches the manifest and config, verifying every byte against its digest.
func (c *Client) Pull(ctx context.Context, ref reference.Named, creds *Credentials) (*Resolved, error) {
	eps, err := Endpoints(c.configDir, reference.Domain(ref))
	if err != nil {
		return nil, err
	}
	repo := reference.Path(ref)
	tagOrDigest, want := "", digest.Digest("")
	if d, ok := ref.(reference.Digested); ok {
		want = d.Digest()
		tagOrDigest = want.String()
	} else if t, ok := ref.(reference.Tagged); ok {
		tagOrDigest = t.Tag()
	} else {
		tagOrDigest = "latest"
	}
	var errs []error
	for _, ep := range eps {
		if !ep.Pull || (want == "" && !ep.Resolve) {
			continue
		}
		res, err := c.pullFrom(ctx, ep, repo, tagOrDigest, want, creds)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.log.Debug("registry endpoint failed", "ref", ref.String(), "endpoint", ep.URL.String(), "error", err)
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("image %q: %w", ref.String(), lastMeaningful(errs))
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

func (c *Client) pullFrom(ctx context.Context, ep *Endpoint, repo, tagOrDigest string, want digest.Digest, creds *Credentials) (*Resolved, error) {
	data, mediaType, dgst, err := c.fetchManifest(ctx, ep, repo, tagOrDigest, want, creds)
	if err != nil {
		return nil, err
	}
	res := &Resolved{TopDigest: dgst, IndexData: map[digest.Digest][]byte{}}
	for depth := 0; isIndex(mediaType); depth++ {
		if depth > 2 {
			return nil, fmt.Errorf("nested indexes too deep: %w", errdefs.ErrInvalidArgument)
		}
		res.IndexDigests = append(res.IndexDigests, dgst)
		res.IndexData[dgst] = data
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("parse index %s: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
		}
		desc, err := c.platform.match(idx.Manifests)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", dgst, err)
		}
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("index %s: manifest digest %q: %v: %w", dgst, desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		if data, mediaType, dgst, err = c.fetchManifest(ctx, ep, repo, desc.Digest.String(), desc.Digest, creds); err != nil {
			return nil, err
		}
	}
	if mediaType == mediaTypeDockerSchema1 {
		return nil, fmt.Errorf("docker schema 1 manifests are not supported: %w", errdefs.ErrInvalidArgument)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest %s: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	if m.Config.Digest == "" || m.Config.Digest.Validate() != nil {
		return nil, fmt.Errorf("manifest %s has no valid config digest: %w", dgst, errdefs.ErrInvalidArgument)
	}
	if m.Config.Size > MaxConfigSize {
		return nil, fmt.Errorf("config %s is %d bytes, over the %d limit: %w", m.Config.Digest, m.Config.Size, MaxConfigSize, errdefs.ErrInvalidArgument)
	}
	res.ManifestDigest, res.ManifestData, res.Manifest = dgst, data, m
	rc, err := c.fetchBlobFrom(ctx, ep, repo, m.Config, creds)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	defer rc.Close()
	if res.ConfigData, err = io.ReadAll(rc); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return res, nil
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// fetchManifest GETs a manifest or index, verifying it against want (or
// computing its digest when fetched by tag).
func (c *Client) fetchManifest(ctx context.Context, ep *Endpoint, repo, tagOrDigest string, want digest.Digest, creds *Credentials) ([]byte, string, digest.Digest, error) {
	resp, err := c.get(ctx, ep, "/"+repo+"/manifests/"+tagOrDigest, repo, manifestAccept, creds)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s is %d bytes, over the %d limit: %w", tagOrDigest, resp.ContentLength, MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("read manifest %s: %v: %w", tagOrDigest, err, errdefs.ErrUnavailable)
	}
	if len(data) > MaxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s is over the %d byte limit: %w", tagOrDigest, MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm() // validated by the reference parser or pullFrom
	}
	got := alg.FromBytes(data)
	if want != "" && got != want {
		return nil, "", "", fmt.Errorf("manifest %s: content has digest %s: %w", want, got, errdefs.ErrInvalidArgument)
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var probe struct {
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		SchemaVersion int             `json:"schemaVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, "", "", fmt.Errorf("manifest %s is not JSON: %v: %w", tagOrDigest, err, errdefs.ErrInvalidArgument)
	}
	switch {
	case probe.MediaType != "":
		mediaType = probe.MediaType
	case probe.SchemaVersion == 1:
		mediaType = mediaTypeDockerSchema1
	case probe.Manifests != nil:
		mediaType = ocispec.MediaTypeImageIndex
	case mediaType != ocispec.MediaTypeImageManifest && mediaType != MediaTypeDockerManifest && !isIndex(mediaType):
		mediaType = ocispec.MediaTypeImageManifest
	}
	return data, mediaType, got, nil
}

// match picks the manifest for the platform from an index.
func (p Platform) match(manifests []ocispec.Descriptor) (ocispec.Descriptor, error) {
	var fallback *ocispec.Descriptor
	for i, d := range manifests {
		if d.Platform == nil || d.Platform.OS != p.OS || d.Platform.Architecture != p.Architecture {
			continue
		}
		if d.Platform.Variant == p.Variant {
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

func variantSuffix(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// FetchBlob streams a blob from the first endpoint that has it. The reader
// verifies size and digest: its last Read returns an error, not io.EOF,
// when the content does not match desc.
func (c *Client) FetchBlob(ctx context.Context, ref reference.Named, creds *Credentials, desc ocispec.Descriptor) (io.ReadCloser, error) {
	eps, err := Endpoints(c.configDir, reference.Domain(ref))
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ep := range eps {
		if !ep.Pull {
			continue
		}
		rc, err := c.fetchBlobFrom(ctx, ep, reference.Path(ref), desc, creds)
		if err == nil {
			return rc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("blob %s of %q: %w", desc.Digest, ref.String(), lastMeaningful(errs))
}

func (c *Client) fetchBlobFrom(ctx context.Context, ep *Endpoint, repo string, desc ocispec.Descriptor, creds *Credentials) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("blob %s has negative size: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	resp, err := c.get(ctx, ep, "/"+repo+"/blobs/"+desc.Digest.String(), repo, nil, creds)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != desc.Size && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: registry sends %d bytes, manifest says %d: %w", desc.Digest, resp.ContentLength, desc.Size, errdefs.ErrInvalidArgument)
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
