package testimage

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// RegistryBlobPath is where a docker-registry started by hack/registry.sh
// with DIR keeps blob d.
func RegistryBlobPath(dir string, d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(dir, "storage", "docker", "registry", "v2", "blobs", d.Algorithm().String(), enc[:2], enc, "data")
}

// CorruptRegistryBlob replaces the stored content of blob d in the
// registry of DIR (hack/registry.sh start DIR ...) with data. The registry
// serves it as is, with the new length, under the old digest: a test can so
// make a real registry serve a blob that does not match its digest, or a
// truncated one.
func CorruptRegistryBlob(dir string, d digest.Digest, data []byte) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	p := RegistryBlobPath(dir, d)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("blob %s not in registry %s: %w", d, dir, err)
	}
	return os.WriteFile(p, data, 0o644)
}
