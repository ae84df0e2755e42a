// Package unpack applies OCI image layers: Decompress undoes a layer blob's
// compression and Apply writes its tar stream into a fresh, empty snapshot
// directory, translating OCI whiteouts to overlayfs ones.
//
// Each layer is applied on its own (layers are unpacked in parallel and
// stacked later as overlayfs lowerdirs), so Apply starts from an empty
// directory and keeps an exact model of everything it created there. That
// model is what keeps a hostile layer inside the directory: entry names are
// cleaned and may not climb out of it, no entry may be written below a
// symbolic link, hard links must name a non-directory created earlier in the
// same layer, and the final component of a path is never followed (an
// existing symlink is replaced, files are opened with O_NOFOLLOW|O_EXCL, and
// metadata is set with the l*/AT_SYMLINK_NOFOLLOW calls). The model assumes
// nobody else writes to the directory while Apply runs.
//
// On error Apply returns at once and leaves a partial tree behind: the caller
// removes the directory.
package unpack

import (
	"bufio"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Options tunes Apply.
type Options struct {
	// NoChown leaves every entry owned by the calling user instead of the
	// uid/gid of its tar header. Set it when not running as root.
	NoChown bool
}

// Result describes an applied layer.
type Result struct {
	// DiffID is the sha256 digest of the whole uncompressed tar stream,
	// trailing padding included: compare it with the image config's diff ID.
	DiffID digest.Digest
	// Size is the number of bytes of regular-file content written.
	Size int64
	// Inodes is the number of entries created (root directory, directories,
	// files, symlinks, devices, whiteouts); hard links are not counted.
	Inodes int64
}

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
	opaqueXattr        = "trusted.overlay.opaque"
	// overlayXattrPrefix names the xattrs overlayfs interprets. Layers may not
	// set them: only the whiteout translation above does.
	overlayXattrPrefix = "trusted.overlay."
	paxXattrPrefix     = "SCHILY.xattr."

	copyBufSize = 1 << 20
	readBufSize = 64 << 10
)

var (
	copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
	readerPool  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
)

// cleanName turns a tar entry name into a clean path relative to the layer
// root ("." is the root itself). A leading "/" is relative to the root, as
// docker does; a name that climbs out of the root is refused.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	name = strings.TrimLeft(name, "/")
	if name == "" {
		return ".", nil
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("path escapes the layer root")
	}
	return c, nil
}

// invalidEntry reports a layer entry that cannot be applied.
func invalidEntry(name, format string, args ...any) error {
	return fmt.Errorf("layer entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// hashReader digests everything read through it and remembers the first
// error of the reader below, so a failing source (network, a digest check, a
// corrupt compressed stream) can be told from a malformed tar.
type hashReader struct {
	r   io.Reader
	h   hash.Hash
	err error // first error of r other than io.EOF
}

func (s *hashReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.h.Write(p[:n])
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// streamError wraps an error met while reading the tar stream: the source's
// own error keeps its kind, anything else means the tar is malformed or
// truncated (ErrInvalidArgument).
func (s *hashReader) streamError(err error, what string) error {
	if s.err != nil {
		return fmt.Errorf("%s: %w", what, s.err)
	}
	if errors.Is(err, errdefs.ErrInvalidArgument) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: malformed layer tar: %w: %w", what, err, errdefs.ErrInvalidArgument)
}
