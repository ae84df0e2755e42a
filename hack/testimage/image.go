package testimage

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image describes an image to build.
type Image struct {
	Layers   []Layer
	Config   ocispec.ImageConfig // Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts, StopSignal, ...
	Labels   map[string]string   // merged into Config.Labels
	Platform ocispec.Platform    // linux/amd64 when OS is empty
	Docker   bool                // Docker schema2 media types instead of OCI
	// History defaults to one entry per layer ("testimage layer N").
	History []ocispec.History
	// Created defaults to Epoch.
	Created *time.Time
	Author  string
	// Annotations go into the manifest.
	Annotations map[string]string
}

// Built is a rendered image: manifest, config and blobs by digest.
type Built struct {
	Manifest       []byte
	ManifestDigest digest.Digest
	MediaType      string
	Config         []byte
	ConfigDigest   digest.Digest // the image ID
	Layers         []ocispec.Descriptor
	DiffIDs        []digest.Digest
	TarSize        int64 // uncompressed bytes of all layers
	Blobs          map[digest.Digest][]byte
	Platform       ocispec.Platform
}

// Descriptor is the manifest's descriptor, with its platform, as an index
// lists it.
func (b *Built) Descriptor() ocispec.Descriptor {
	p := b.Platform
	return ocispec.Descriptor{MediaType: b.MediaType, Digest: b.ManifestDigest, Size: int64(len(b.Manifest)), Platform: &p}
}

// Build renders img; layers are compressed in parallel.
func Build(img Image) (*Built, error) {
	b := &Built{Blobs: map[digest.Digest][]byte{}, Platform: img.Platform}
	if b.Platform.OS == "" {
		b.Platform.OS = "linux"
	}
	if b.Platform.Architecture == "" {
		b.Platform.Architecture = "amd64"
	}
	rendered := make([]compressed, len(img.Layers))
	errs := make([]error, len(img.Layers))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, l := range img.Layers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rendered[i], errs[i] = l.render(img.Docker)
		}()
	}
	wg.Wait()
	for i, c := range rendered {
		if errs[i] != nil {
			return nil, fmt.Errorf("layer %d: %w", i, errs[i])
		}
		d := img.Layers[i].Digest
		if d == "" {
			d = digest.SHA256.FromBytes(c.blob)
		}
		b.Blobs[d] = c.blob
		b.Layers = append(b.Layers, ocispec.Descriptor{MediaType: c.mediaType, Digest: d, Size: int64(len(c.blob))})
		b.DiffIDs = append(b.DiffIDs, c.diffID)
		b.TarSize += c.tarSize
	}

	created := img.Created
	if created == nil {
		created = &Epoch
	}
	history := img.History
	if history == nil {
		for i := range img.Layers {
			history = append(history, ocispec.History{Created: created, CreatedBy: fmt.Sprintf("testimage layer %d", i)})
		}
	}
	cfg := ocispec.Image{
		Created:  created,
		Author:   img.Author,
		Platform: b.Platform,
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: b.DiffIDs},
		History:  history,
	}
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Config.Labels {
			labels[k] = v
		}
		for k, v := range img.Labels {
			labels[k] = v
		}
		cfg.Config.Labels = labels
	}
	if cfg.RootFS.DiffIDs == nil {
		cfg.RootFS.DiffIDs = []digest.Digest{}
	}
	var err error
	if b.Config, err = json.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	b.ConfigDigest = digest.SHA256.FromBytes(b.Config)
	b.Blobs[b.ConfigDigest] = b.Config

	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: b.ConfigDigest, Size: int64(len(b.Config))},
		Layers:      b.Layers,
		Annotations: img.Annotations,
	}
	if img.Docker {
		m.MediaType = MediaTypeDockerManifest
		m.Config.MediaType = MediaTypeDockerConfig
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	b.MediaType = m.MediaType
	if b.Manifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	b.ManifestDigest = digest.SHA256.FromBytes(b.Manifest)
	return b, nil
}

// BuiltIndex is a multi-platform OCI index or Docker manifest list over
// several built images.
type BuiltIndex struct {
	Data      []byte
	Digest    digest.Digest
	MediaType string
	Images    []*Built
}

// Index renders an OCI index over images, each under its platform, in the
// order given.
func Index(images ...*Built) (*BuiltIndex, error) {
	return renderIndex(ocispec.MediaTypeImageIndex, images)
}

// ManifestList renders a Docker schema2 manifest list over images (which
// should be built with Image.Docker).
func ManifestList(images ...*Built) (*BuiltIndex, error) {
	return renderIndex(MediaTypeDockerManifestList, images)
}

func renderIndex(mediaType string, images []*Built) (*BuiltIndex, error) {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType, Manifests: []ocispec.Descriptor{}}
	for _, b := range images {
		idx.Manifests = append(idx.Manifests, b.Descriptor())
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("marshal index: %w", err)
	}
	return &BuiltIndex{Data: data, Digest: digest.SHA256.FromBytes(data), MediaType: mediaType, Images: images}, nil
}

// mediaType is the index's media type (OCI when unset).
func (idx *BuiltIndex) mediaType() string {
	if idx.MediaType == "" {
		return ocispec.MediaTypeImageIndex
	}
	return idx.MediaType
}
