// Package testimage builds OCI and Docker images from tar entries and
// serves or pushes them, for crid's tests and benchmarks. It can build
// deliberately malicious or corrupt images too.
package testimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Epoch is the fixed mtime of every entry, so builds are reproducible.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one tar entry. Header, when set, is written as is (for
// malicious layers); otherwise the other fields build it.
type Entry struct {
	Header   *tar.Header
	Name     string
	Type     byte
	Body     []byte
	Mode     int64
	UID, GID int
	Linkname string
	Xattrs   map[string]string
}

// File is a regular file.
func File(name, body string, mode int64) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Body: []byte(body), Mode: mode}
}

// Dir is a directory.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symbolic link name -> target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Linkname: target, Mode: 0o777}
}

// Hardlink is a hard link name -> target (a path in the same layer).
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Linkname: target, Mode: 0o644}
}

// Whiteout deletes path of a lower layer.
func Whiteout(path string) Entry {
	dir, base := splitPath(path)
	return File(dir+".wh."+base, "", 0o644)
}

// Opaque hides everything lower layers have in dir.
func Opaque(dir string) Entry { return File(dir+"/.wh..wh..opq", "", 0o644) }

func splitPath(p string) (string, string) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i+1], p[i+1:]
		}
	}
	return "", p
}

// Compression of a layer blob.
const (
	Gzip = "gzip"
	Zstd = "zstd"
	None = "none"
)

// Layer is a list of entries, or Raw tar bytes, compressed as Compression.
type Layer struct {
	Entries     []Entry
	Raw         []byte
	Compression string // default gzip
}

// Tar renders the layer's uncompressed tar stream.
func (l Layer) Tar() ([]byte, error) {
	if l.Raw != nil {
		return l.Raw, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l.Entries {
		h := e.Header
		if h == nil {
			h = &tar.Header{
				Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
				Linkname: e.Linkname, ModTime: Epoch, Format: tar.FormatPAX,
			}
			if e.Type == tar.TypeReg {
				h.Size = int64(len(e.Body))
			}
			if len(e.Xattrs) > 0 {
				h.PAXRecords = map[string]string{}
				for k, v := range e.Xattrs {
					h.PAXRecords["SCHILY.xattr."+k] = v
				}
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", h.Name, err)
		}
		if len(e.Body) > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Blob compresses the layer and returns the blob, its media type and the
// diff ID (digest of the uncompressed tar).
func (l Layer) Blob(docker bool) ([]byte, string, digest.Digest, error) {
	raw, err := l.Tar()
	if err != nil {
		return nil, "", "", err
	}
	diffID := digest.SHA256.FromBytes(raw)
	var buf bytes.Buffer
	switch l.Compression {
	case "", Gzip:
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.ModTime = Epoch
		zw.Write(raw)
		zw.Close()
		if docker {
			return buf.Bytes(), "application/vnd.docker.image.rootfs.diff.tar.gzip", diffID, nil
		}
		return buf.Bytes(), ocispec.MediaTypeImageLayerGzip, diffID, nil
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			return nil, "", "", err
		}
		zw.Write(raw)
		zw.Close()
		return buf.Bytes(), ocispec.MediaTypeImageLayerZstd, diffID, nil
	case None:
		if docker {
			return raw, "application/vnd.docker.image.rootfs.diff.tar", diffID, nil
		}
		return raw, ocispec.MediaTypeImageLayer, diffID, nil
	}
	return nil, "", "", fmt.Errorf("unknown compression %q", l.Compression)
}

// Image describes an image to build.
type Image struct {
	Layers   []Layer
	Config   ocispec.ImageConfig
	Platform ocispec.Platform // default linux/amd64
	Docker   bool             // Docker schema2 media types instead of OCI
	Labels   map[string]string
}

// Built is a rendered image: manifest, config and blobs by digest.
type Built struct {
	Manifest       []byte
	ManifestDigest digest.Digest
	MediaType      string
	Config         []byte
	ConfigDigest   digest.Digest
	Layers         []ocispec.Descriptor
	DiffIDs        []digest.Digest
	TarSize        int64 // uncompressed bytes of all layers
	Blobs          map[digest.Digest][]byte
	Platform       ocispec.Platform
}

// Build renders img.
func Build(img Image) (*Built, error) {
	b := &Built{Blobs: map[digest.Digest][]byte{}, Platform: img.Platform}
	if b.Platform.OS == "" {
		b.Platform = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	for _, l := range img.Layers {
		blob, mt, diffID, err := l.Blob(img.Docker)
		if err != nil {
			return nil, err
		}
		d := digest.SHA256.FromBytes(blob)
		b.Blobs[d] = blob
		b.Layers = append(b.Layers, ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(blob))})
		b.DiffIDs = append(b.DiffIDs, diffID)
		if raw, err := l.Tar(); err == nil {
			b.TarSize += int64(len(raw))
		}
	}
	cfg := ocispec.Image{
		Created:  &Epoch,
		Platform: b.Platform,
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: b.DiffIDs},
	}
	if img.Labels != nil {
		cfg.Config.Labels = img.Labels
	}
	var err error
	if b.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	b.ConfigDigest = digest.SHA256.FromBytes(b.Config)
	b.Blobs[b.ConfigDigest] = b.Config
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: b.ConfigDigest, Size: int64(len(b.Config))},
		Layers:    b.Layers,
	}
	if img.Docker {
		m.MediaType = "application/vnd.docker.distribution.manifest.v2+json"
		m.Config.MediaType = "application/vnd.docker.container.image.v1+json"
	}
	b.MediaType = m.MediaType
	if b.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	b.ManifestDigest = digest.SHA256.FromBytes(b.Manifest)
	return b, nil
}

// BuiltIndex is a multi-platform index over several built images.
type BuiltIndex struct {
	Data   []byte
	Digest digest.Digest
	Images []*Built
}

// Index renders an OCI index over images, each under its platform.
func Index(images ...*Built) (*BuiltIndex, error) {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, b := range images {
		p := b.Platform
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: b.MediaType, Digest: b.ManifestDigest, Size: int64(len(b.Manifest)), Platform: &p,
		})
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	return &BuiltIndex{Data: data, Digest: digest.SHA256.FromBytes(data), Images: images}, nil
}
