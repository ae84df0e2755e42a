package unpack

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Docker image manifest v2 schema 2 layer media types.
const (
	MediaTypeDockerLayer            = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerLayerZstd        = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// maxZstdWindow is the largest zstd window accepted (zstd --long=27).
const maxZstdWindow = 128 << 20

type compression int

const (
	uncompressed compression = iota
	gzipped
	zstded
)

// layerCompression maps a layer media type to its compression.
func layerCompression(mediaType string) (compression, bool) {
	switch mediaType {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerNonDistributable,
		MediaTypeDockerLayer:
		return uncompressed, true
	case ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerNonDistributableGzip,
		MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeignGzip:
		return gzipped, true
	case ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerNonDistributableZstd,
		MediaTypeDockerLayerZstd:
		return zstded, true
	}
	return 0, false
}

// Decompress wraps r, a layer blob of the given OCI or Docker media type, so
// that it reads the uncompressed tar stream. An unknown media type is
// ErrInvalidArgument, and so is a corrupt or truncated compressed stream met
// while reading; errors of r itself are returned unchanged. Close releases
// the decompressor; it does not close r.
func Decompress(r io.Reader, mediaType string) (io.ReadCloser, error) {
	c, ok := layerCompression(mediaType)
	if !ok {
		return nil, fmt.Errorf("unsupported layer media type %q: %w", mediaType, errdefs.ErrInvalidArgument)
	}
	src := &errReader{r: r}
	switch c {
	case gzipped:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, src.wrap("gzip", err)
		}
		return &decompressor{src: src, r: zr, kind: "gzip", close: zr.Close}, nil
	case zstded:
		// One goroutine per layer: layers already decompress in parallel, and
		// a synchronous decoder reads its source only from this goroutine.
		// The window (history kept in memory) is capped at what `zstd --long`
		// uses, so a hostile frame cannot make each layer allocate 512 MiB.
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, src.wrap("zstd", err)
		}
		return &decompressor{src: src, r: zr, kind: "zstd", close: func() error { zr.Close(); return nil }}, nil
	}
	return io.NopCloser(r), nil
}

// errReader remembers the first error of its reader other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// wrap returns the source's error if it failed, else err as a corrupt stream.
func (e *errReader) wrap(kind string, err error) error {
	if e.err != nil {
		return e.err
	}
	return fmt.Errorf("corrupt %s layer stream: %w: %w", kind, err, errdefs.ErrInvalidArgument)
}

type decompressor struct {
	src   *errReader
	r     io.Reader
	kind  string
	close func() error
}

func (d *decompressor) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = d.src.wrap(d.kind, err)
	}
	return n, err
}

func (d *decompressor) Close() error { return d.close() }
