package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

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

// maxIndexDepth is how many nested indexes are followed.
const maxIndexDepth = 3

var manifestAccept = []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, MediaTypeDockerManifestList, MediaTypeDockerManifest}

// Resolved is an image reference resolved to one platform's manifest.
type Resolved struct {
	TopDigest      digest.Digest // what the reference names: index or manifest
	IndexDigests   []digest.Digest
	IndexData      map[digest.Digest][]byte
	ManifestDigest digest.Digest
	ManifestData   []byte
	Manifest       ocispec.Manifest
	ConfigData     []byte // set by Pull, not by FetchManifest
}

// Pull resolves ref, follows an index to the client's platform, and
// fetches the manifest and config, verifying every byte against its digest.
// A tag is resolved (GET, one request) by the first endpoint that may
// resolve and has it; everything named by digest then comes from the first
// endpoint that may pull and has it, mirrors first.
func (c *Client) Pull(ctx context.Context, ref reference.Named, creds *Credentials) (*Resolved, error) {
	t, err := c.target(ref, creds)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	var top *document
	if d, ok := ref.(reference.Digested); ok {
		top, err = c.manifestByDigest(ctx, t, ocispec.Descriptor{Digest: d.Digest()})
	} else {
		err = c.each(ctx, t, true, func(ep *Endpoint) error {
			doc, err := c.fetchManifest(ctx, ep, t, tagOf(ref), ocispec.Descriptor{})
			top = doc
			return err
		})
	}
	if err != nil {
		return nil, imageErr(ref, err)
	}
	res, err := c.follow(ctx, t, top)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	if res.ConfigData, err = c.blobBytes(ctx, t, res.Manifest.Config, MaxConfigSize); err != nil {
		return nil, imageErr(ref, fmt.Errorf("config %s: %w", res.Manifest.Config.Digest, err))
	}
	return res, nil
}

// Resolve returns the descriptor of what ref names (an index or a
// manifest) and the endpoint that answered. A tag is resolved with HEAD
// where the registry answers it with a digest, else with GET; a digest is
// fetched and its content verified.
func (c *Client) Resolve(ctx context.Context, ref reference.Named, creds *Credentials) (ocispec.Descriptor, *Endpoint, error) {
	t, err := c.target(ref, creds)
	if err != nil {
		return ocispec.Descriptor{}, nil, imageErr(ref, err)
	}
	var desc ocispec.Descriptor
	var used *Endpoint
	if d, ok := ref.(reference.Digested); ok {
		err = c.each(ctx, t, false, func(ep *Endpoint) error {
			doc, err := c.fetchManifest(ctx, ep, t, d.Digest().String(), ocispec.Descriptor{Digest: d.Digest()})
			if err == nil {
				desc, used = doc.descriptor(), ep
			}
			return err
		})
	} else {
		err = c.each(ctx, t, true, func(ep *Endpoint) error {
			d, err := c.head(ctx, ep, t, tagOf(ref))
			if errors.Is(err, errHeadUnusable) {
				var doc *document
				if doc, err = c.fetchManifest(ctx, ep, t, tagOf(ref), ocispec.Descriptor{}); err == nil {
					d = doc.descriptor()
				}
			}
			if err == nil {
				desc, used = d, ep
			}
			return err
		})
	}
	if err != nil {
		return ocispec.Descriptor{}, nil, imageErr(ref, err)
	}
	return desc, used, nil
}

// FetchManifest fetches the manifest or index desc names (as Resolve
// returns it) from ref's repository, follows indexes to the client's
// platform, and returns the verified documents; ConfigData is left empty
// (see FetchBlobBytes).
func (c *Client) FetchManifest(ctx context.Context, ref reference.Named, creds *Credentials, desc ocispec.Descriptor) (*Resolved, error) {
	t, err := c.target(ref, creds)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	top, err := c.manifestByDigest(ctx, t, desc)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	res, err := c.follow(ctx, t, top)
	if err != nil {
		return nil, imageErr(ref, err)
	}
	return res, nil
}

func imageErr(ref reference.Named, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("image %q not found: %w", ref.String(), err)
	}
	return fmt.Errorf("image %q: %w", ref.String(), err)
}

func tagOf(ref reference.Named) string {
	if t, ok := ref.(reference.Tagged); ok {
		return t.Tag()
	}
	return "latest"
}

// follow walks from top through indexes to the platform's manifest.
func (c *Client) follow(ctx context.Context, t *target, doc *document) (*Resolved, error) {
	res := &Resolved{TopDigest: doc.digest, IndexData: map[digest.Digest][]byte{}}
	for depth := 0; isIndex(doc.mediaType); depth++ {
		if depth >= maxIndexDepth {
			return nil, fmt.Errorf("nested indexes too deep: %w", errdefs.ErrInvalidArgument)
		}
		res.IndexDigests = append(res.IndexDigests, doc.digest)
		res.IndexData[doc.digest] = doc.data
		var idx ocispec.Index
		if err := json.Unmarshal(doc.data, &idx); err != nil {
			return nil, fmt.Errorf("parse index %s: %v: %w", doc.digest, err, errdefs.ErrInvalidArgument)
		}
		desc, err := c.platform.match(idx.Manifests)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", doc.digest, err)
		}
		parent := doc.digest
		if doc, err = c.manifestByDigest(ctx, t, desc); err != nil {
			return nil, fmt.Errorf("index %s: %w", parent, err)
		}
	}
	if doc.mediaType == mediaTypeDockerSchema1 {
		return nil, fmt.Errorf("docker schema 1 manifests are not supported: %w", errdefs.ErrInvalidArgument)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(doc.data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest %s: %v: %w", doc.digest, err, errdefs.ErrInvalidArgument)
	}
	if m.Config.Digest == "" || m.Config.Digest.Validate() != nil {
		return nil, fmt.Errorf("manifest %s has no valid config digest: %w", doc.digest, errdefs.ErrInvalidArgument)
	}
	if m.Config.Size > MaxConfigSize {
		return nil, fmt.Errorf("config %s is %d bytes, over the %d limit: %w", m.Config.Digest, m.Config.Size, MaxConfigSize, errdefs.ErrInvalidArgument)
	}
	res.ManifestDigest, res.ManifestData, res.Manifest = doc.digest, doc.data, m
	return res, nil
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// document is a verified manifest or index.
type document struct {
	data      []byte
	mediaType string
	digest    digest.Digest
}

func (d *document) descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.mediaType, Digest: d.digest, Size: int64(len(d.data))}
}

// manifestByDigest fetches desc from the first endpoint that may pull and
// serves it correctly.
func (c *Client) manifestByDigest(ctx context.Context, t *target, desc ocispec.Descriptor) (*document, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("manifest digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes, over the %d limit: %w", desc.Digest, desc.Size, MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	var doc *document
	err := c.each(ctx, t, false, func(ep *Endpoint) error {
		d, err := c.fetchManifest(ctx, ep, t, desc.Digest.String(), desc)
		doc = d
		return err
	})
	return doc, err
}

// errHeadUnusable: a HEAD answer without what resolving needs; use GET.
var errHeadUnusable = errors.New("HEAD answer unusable")

// head resolves a tag with HEAD, from the Docker-Content-Digest,
// Content-Type and Content-Length the registry sends.
func (c *Client) head(ctx context.Context, ep *Endpoint, t *target, tag string) (ocispec.Descriptor, error) {
	resp, err := c.do(ctx, ep, t, http.MethodHead, "/"+t.repo+"/manifests/"+tag, manifestAccept)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && (se.code == http.StatusMethodNotAllowed || se.code == http.StatusBadRequest || se.code == http.StatusNotImplemented) {
			return ocispec.Descriptor{}, errHeadUnusable
		}
		return ocispec.Descriptor{}, err
	}
	resp.Body.Close()
	d := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	size := resp.ContentLength
	if size < 0 {
		size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	}
	known := isIndex(mediaType) || mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerManifest
	if d.Validate() != nil || !known || size <= 0 {
		return ocispec.Descriptor{}, errHeadUnusable
	}
	if size > MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s is %d bytes, over the %d limit: %w", d, size, MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: size}, nil
}

// fetchManifest GETs a manifest or index by tag or digest from ep. When
// want names a digest (and size), the content must match it; by tag, its
// digest is computed.
func (c *Client) fetchManifest(ctx context.Context, ep *Endpoint, t *target, tagOrDigest string, want ocispec.Descriptor) (*document, error) {
	resp, err := c.open(ctx, ep, t, "/"+t.repo+"/manifests/"+tagOrDigest, manifestAccept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes, over the %d limit: %w", tagOrDigest, resp.ContentLength, MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read manifest %s from %s: %w: %w", tagOrDigest, ep.URL, err, errdefs.ErrUnavailable)
	}
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is over the %d byte limit: %w", tagOrDigest, MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if want.Digest != "" {
		alg = want.Digest.Algorithm() // validated by the reference parser or manifestByDigest
	}
	got := alg.FromBytes(data)
	if want.Digest != "" && got != want.Digest {
		return nil, fmt.Errorf("manifest %s from %s: content has digest %s: %w", want.Digest, ep.URL, got, errdefs.ErrInvalidArgument)
	}
	if want.Size > 0 && int64(len(data)) != want.Size {
		return nil, fmt.Errorf("manifest %s from %s is %d bytes, its descriptor says %d: %w", want.Digest, ep.URL, len(data), want.Size, errdefs.ErrInvalidArgument)
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var probe struct {
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		SchemaVersion int             `json:"schemaVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("manifest %s is not JSON: %v: %w", tagOrDigest, err, errdefs.ErrInvalidArgument)
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
	return &document{data: data, mediaType: mediaType, digest: got}, nil
}
