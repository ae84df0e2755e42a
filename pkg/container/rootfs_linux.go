package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/mount"
	"github.com/crid-dev/crid/pkg/store"
)

// mountRootfs mounts the container's rootfs: an overlay of its image's
// layer snapshots (lower) and its own writable layer (upper, work), which
// lives under the root dir so that it survives crid restarts. chains are
// the image's layers, bottom first.
func (m *Manager) mountRootfs(c *store.Container, rootfs string, chains []string) error {
	layer := m.layerDir(c.ID)
	upper, work := filepath.Join(layer, "upper"), filepath.Join(layer, "work")
	for _, d := range []string{rootfs, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create rootfs dirs: %w", err)
		}
	}
	// The bundle holds the spec and the shim's socket: root only, but
	// traversable so that a non-root container user can reach its rootfs.
	if err := os.Chmod(filepath.Dir(rootfs), 0o711); err != nil {
		return err
	}
	lowers, err := m.images.SnapshotDirs(&store.Image{ID: c.ImageID, ChainIDs: chains})
	if err != nil {
		return err
	}
	if len(lowers) == 0 {
		// An image without layers: overlay needs a lower dir.
		empty := filepath.Join(layer, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lowers = []string{empty}
	}
	if err := mount.Overlay(rootfs, lowers, upper, work, false); err != nil {
		return fmt.Errorf("mount container rootfs: %w", err)
	}
	return nil
}

// unmountRootfs unmounts a rootfs; not mounted is fine. A lazy detach
// covers a mount still busy because a process of the container lingers.
func unmountRootfs(rootfs string) error {
	for range 8 {
		err := unix.Unmount(rootfs, 0)
		switch {
		case err == nil:
			continue // stacked mounts: unmount until none is left
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", rootfs, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", rootfs, err)
		}
	}
	return nil
}
