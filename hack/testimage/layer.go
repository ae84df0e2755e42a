// Package testimage builds OCI and Docker schema2 images from tar entries,
// in memory or as an OCI layout on disk, and pushes or serves them over the
// distribution API, for crid's tests and benchmarks. It builds deliberately
// malicious (path escapes, raw tar headers) and corrupt (mismatching digest,
// truncated) images too. Builds are reproducible: fixed mtimes and entry
// order, so equal input gives equal digests.
//
// Serving a blob whose content does not match its digest: docker-registry
// verifies every upload (PUT ?digest=) and answers 400 DIGEST_INVALID, so
// such an image cannot be pushed. Either serve it from a Server (Layer.Digest
// override, Server.SetBlob, or Server.Tamper / Server.DropAfter at serve
// time), or push a good image to a registry started by hack/registry.sh and
// overwrite the stored blob with CorruptRegistryBlob (the registry does not
// re-verify what it serves).
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Epoch is the fixed mtime of every entry and the creation time of every
// image, so builds are reproducible.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one tar entry. Header, when set, is written as is (with Body as
// its content, for malicious layers: "../evil", absolute names, links out of
// the root, sizes that lie); otherwise the other fields build the header.
type Entry struct {
	Header   *tar.Header
	Name     string
	Type     byte // tar.TypeReg when zero
	Body     []byte
	Mode     int64
	UID, GID int
	Linkname string
	Xattrs   map[string]string // written as PAX SCHILY.xattr.<name>
	Devmajor int64
	Devminor int64
}

// File is a regular file owned by root.
func File(name, body string, mode int64) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Body: []byte(body), Mode: mode}
}

// Dir is a directory owned by root.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symbolic link name -> target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Linkname: target, Mode: 0o777}
}

// Hardlink is a hard link name -> target, a path written earlier in the
// same layer.
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Linkname: target, Mode: 0o644}
}

// Whiteout deletes path (and everything under it) of the lower layers.
func Whiteout(path string) Entry {
	path = strings.TrimSuffix(path, "/")
	dir, base := "", path
	if i := strings.LastIndex(path, "/"); i >= 0 {
		dir, base = path[:i+1], path[i+1:]
	}
	return File(dir+".wh."+base, "", 0o644)
}

// Opaque hides everything the lower layers have in dir; entries of the same
// layer in dir stay.
func Opaque(dir string) Entry { return File(strings.TrimSuffix(dir, "/")+"/.wh..wh..opq", "", 0o644) }

// Compression of a layer blob.
const (
	Gzip = "gzip"
	Zstd = "zstd"
	None = "none"
)

// Docker schema2 media types (OCI ones come from image-spec).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// Layer is a list of entries (or Raw tar bytes) compressed as Compression.
// RawBlob, Digest, DiffID and MediaType let a test describe a layer that is
// not what it claims to be.
type Layer struct {
	Entries     []Entry
	Raw         []byte // uncompressed tar used instead of Entries
	Compression string // Gzip (default), Zstd or None

	// RawBlob, when set, is the blob as is: no tar, no compression. Its diff
	// ID is its own digest unless DiffID is set.
	RawBlob []byte
	// MediaType overrides the descriptor's media type.
	MediaType string
	// Digest overrides the descriptor's digest: the blob is stored in
	// Built.Blobs under this digest, so a Server serves content that does not
	// match it (a registry refuses to take it).
	Digest digest.Digest
	// DiffID overrides the diff ID recorded in the image config.
	DiffID digest.Digest
}

// Tar renders the layer's uncompressed tar stream.
func (l Layer) Tar() ([]byte, error) {
	if l.RawBlob != nil {
		return nil, fmt.Errorf("layer has a raw blob, no tar")
	}
	if l.Raw != nil {
		return l.Raw, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l.Entries {
		h := e.Header
		if h == nil {
			h = e.header()
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %q: %w", h.Name, err)
		}
		if len(e.Body) > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, fmt.Errorf("tar body %q: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

func (e Entry) header() *tar.Header {
	typ := e.Type
	if typ == 0 {
		typ = tar.TypeReg
	}
	name := e.Name
	if typ == tar.TypeDir && !strings.HasSuffix(name, "/") {
		name += "/"
	}
	h := &tar.Header{
		Name: name, Typeflag: typ, Mode: e.Mode, Uid: e.UID, Gid: e.GID, Linkname: e.Linkname,
		Devmajor: e.Devmajor, Devminor: e.Devminor, ModTime: Epoch, Format: tar.FormatPAX,
	}
	if typ == tar.TypeReg {
		h.Size = int64(len(e.Body))
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(e.Xattrs)) {
			h.PAXRecords["SCHILY.xattr."+k] = e.Xattrs[k]
		}
	}
	return h
}

// compressed is a rendered layer blob.
type compressed struct {
	blob      []byte
	mediaType string
	diffID    digest.Digest
	tarSize   int64
}

func (l Layer) render(docker bool) (compressed, error) {
	if l.RawBlob != nil {
		c := compressed{blob: l.RawBlob, mediaType: l.MediaType, diffID: l.DiffID}
		if c.mediaType == "" {
			c.mediaType = layerMediaType(Gzip, docker)
		}
		if c.diffID == "" {
			c.diffID = digest.SHA256.FromBytes(l.RawBlob)
		}
		return c, nil
	}
	raw, err := l.Tar()
	if err != nil {
		return compressed{}, err
	}
	comp := l.Compression
	if comp == "" {
		comp = Gzip
	}
	c := compressed{mediaType: layerMediaType(comp, docker), diffID: digest.SHA256.FromBytes(raw), tarSize: int64(len(raw))}
	if c.blob, err = Compress(raw, comp); err != nil {
		return compressed{}, err
	}
	if l.MediaType != "" {
		c.mediaType = l.MediaType
	}
	if l.DiffID != "" {
		c.diffID = l.DiffID
	}
	return c, nil
}

// Blob compresses the layer and returns the blob, its media type and the
// diff ID (digest of the uncompressed tar).
func (l Layer) Blob(docker bool) ([]byte, string, digest.Digest, error) {
	c, err := l.render(docker)
	return c.blob, c.mediaType, c.diffID, err
}

func layerMediaType(comp string, docker bool) string {
	switch {
	case comp == Zstd: // Docker schema2 has no zstd type; Docker uses the OCI one.
		return ocispec.MediaTypeImageLayerZstd
	case comp == None && docker:
		return MediaTypeDockerLayer
	case comp == None:
		return ocispec.MediaTypeImageLayer
	case docker:
		return MediaTypeDockerLayerGzip
	}
	return ocispec.MediaTypeImageLayerGzip
}

// Compress compresses raw with Gzip (fast level, fixed header), Zstd or None,
// deterministically.
func Compress(raw []byte, comp string) ([]byte, error) {
	var buf bytes.Buffer
	switch comp {
	case "", Gzip:
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		zw.ModTime = Epoch
		if _, err := zw.Write(raw); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	case Zstd:
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if _, err := io.Copy(zw, bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
	case None:
		return raw, nil
	default:
		return nil, fmt.Errorf("unknown compression %q", comp)
	}
	return buf.Bytes(), nil
}
