package testimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteLayout writes b as an OCI image layout in dir (oci-layout,
// index.json, blobs/sha256/...), named by each tag through the
// org.opencontainers.image.ref.name annotation (unnamed when no tag).
func (b *Built) WriteLayout(dir string, tags ...string) error {
	blobs := map[digest.Digest][]byte{b.ManifestDigest: b.Manifest}
	for d, data := range b.Blobs {
		blobs[d] = data
	}
	return writeLayout(dir, b.Descriptor(), blobs, tags)
}

// WriteLayout writes idx and all its images as an OCI image layout in dir.
func (idx *BuiltIndex) WriteLayout(dir string, tags ...string) error {
	blobs := map[digest.Digest][]byte{idx.Digest: idx.Data}
	for _, b := range idx.Images {
		blobs[b.ManifestDigest] = b.Manifest
		for d, data := range b.Blobs {
			blobs[d] = data
		}
	}
	desc := ocispec.Descriptor{MediaType: idx.mediaType(), Digest: idx.Digest, Size: int64(len(idx.Data))}
	return writeLayout(dir, desc, blobs, tags)
}

func writeLayout(dir string, desc ocispec.Descriptor, blobs map[digest.Digest][]byte, tags []string) error {
	for d, data := range blobs {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("blob digest %q: %w", d, err)
		}
		p := filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	if len(tags) == 0 {
		idx.Manifests = append(idx.Manifests, desc)
	}
	for _, t := range tags {
		d := desc
		d.Annotations = map[string]string{ocispec.AnnotationRefName: t}
		idx.Manifests = append(idx.Manifests, d)
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), data, 0o644); err != nil {
		return err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	return os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), layout, 0o644)
}
