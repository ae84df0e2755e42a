package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// contentStore keeps small blobs (manifests, indexes, configs) by digest
// under <root>/content/sha256/<hex>. Layers are not kept: they are unpacked
// straight into snapshots.
type contentStore struct{ dir string }

func newContentStore(root string) (*contentStore, error) {
	dir := filepath.Join(root, "content", "sha256")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create content store: %w", err)
	}
	return &contentStore{dir: dir}, nil
}

func (c *contentStore) path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("content digest %q: invalid", d)
	}
	return filepath.Join(c.dir, d.Encoded()), nil
}

// Put writes data under its digest, verifying it first. Written through a
// temp file and rename, so a reader never sees a partial blob.
func (c *contentStore) Put(d digest.Digest, data []byte) error {
	p, err := c.path(d)
	if err != nil {
		return err
	}
	if got := digest.SHA256.FromBytes(data); got != d {
		return fmt.Errorf("content %s: data has digest %s", d, got)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(c.dir, ".ingest-")
	if err != nil {
		return fmt.Errorf("store content %s: %w", d, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("store content %s: %w", d, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store content %s: %w", d, err)
	}
	return os.Rename(tmp.Name(), p)
}

// Get reads a blob.
func (c *contentStore) Get(d digest.Digest) ([]byte, error) {
	p, err := c.path(d)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read content %s: %w", d, err)
	}
	return data, nil
}

// Prune removes every blob whose digest is not in keep; temp files of
// interrupted writes only when removeTemps is set (no write is in flight).
func (c *contentStore) Prune(keep map[digest.Digest]bool, removeTemps bool) error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("list content: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".ingest-") {
			if !removeTemps {
				continue
			}
		} else if keep[digest.NewDigestFromEncoded(digest.SHA256, e.Name())] {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
