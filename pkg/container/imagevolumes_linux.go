package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/mount"
	"github.com/crid-dev/crid/pkg/store"
)

// imageVolumesDir holds the read-only mounts of a container's image
// volumes (CRI mounts that name an image), one numbered dir per mount.
const imageVolumesDir = "imagevols"

// imageVolume is a CRI mount of an image, resolved.
type imageVolume struct {
	index int // in the container config's mounts
	image *store.Image
}

// resolveImageVolumes finds the images of the config's image volumes
// (they must have been pulled, as kubelet does) and refuses writable ones.
func (m *Manager) resolveImageVolumes(cfg *runtime.ContainerConfig) ([]imageVolume, error) {
	var vols []imageVolume
	for i, mnt := range cfg.GetMounts() {
		if mnt.GetImage() == nil {
			continue
		}
		if !mnt.GetReadonly() {
			return nil, fmt.Errorf("image volume at %s must be read-only: %w", mnt.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		if mnt.GetHostPath() != "" {
			return nil, fmt.Errorf("image volume at %s must not name a host path: %w", mnt.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		img, err := m.images.Lookup(mnt.GetImage().GetImage())
		if err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", mnt.GetContainerPath(), err)
		}
		vols = append(vols, imageVolume{index: i, image: img})
	}
	return vols, nil
}

// mountImageVolumes mounts each image volume read-only under the bundle
// and returns a copy of cfg whose mounts point at them (at the sub path, if
// any, which must exist in the image and stays inside it).
func (m *Manager) mountImageVolumes(bundle string, cfg *runtime.ContainerConfig, vols []imageVolume) (*runtime.ContainerConfig, error) {
	if len(vols) == 0 {
		return cfg, nil
	}
	out := proto.Clone(cfg).(*runtime.ContainerConfig)
	for _, v := range vols {
		mnt := out.Mounts[v.index]
		dir := filepath.Join(bundle, imageVolumesDir, strconv.Itoa(v.index))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		lowers, err := m.images.SnapshotDirs(v.image)
		if err != nil {
			return nil, err
		}
		if err := mountReadOnly(dir, lowers); err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", mnt.GetContainerPath(), err)
		}
		src := dir
		if sub := mnt.GetImageSubPath(); sub != "" {
			if src, err = securejoin.SecureJoin(dir, sub); err != nil {
				return nil, fmt.Errorf("image volume at %s: sub path %q: %w", mnt.GetContainerPath(), sub, errdefs.ErrInvalidArgument)
			}
			if _, err := os.Lstat(src); err != nil {
				return nil, fmt.Errorf("image volume at %s: sub path %q is not in image %s: %w", mnt.GetContainerPath(), sub, v.image.ID, errdefs.ErrInvalidArgument)
			}
		}
		mnt.HostPath = src
	}
	return out, nil
}

// mountReadOnly mounts an image's layers (top first) read-only at dir: an
// overlay of them, or a read-only bind of a single layer (overlay without
// an upper dir needs two).
func mountReadOnly(dir string, lowers []string) error {
	switch len(lowers) {
	case 0:
		return errors.New("the image has no layers")
	case 1:
		if err := unix.Mount(lowers[0], dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", lowers[0], err)
		}
		if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
			return fmt.Errorf("make %s read-only: %w", dir, err)
		}
		return nil
	default:
		return mount.Overlay(dir, lowers, "", "", true)
	}
}

// unmountImageVolumes unmounts every image volume of a bundle.
func unmountImageVolumes(bundle string) error {
	entries, err := os.ReadDir(filepath.Join(bundle, imageVolumesDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, unmountRootfs(filepath.Join(bundle, imageVolumesDir, e.Name())))
	}
	return errors.Join(errs...)
}
