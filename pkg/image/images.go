package image

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

// List returns every image, ordered by ID.
func (s *Service) List() ([]*store.Image, error) {
	var images []*store.Image
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		images, err = tx.Images()
		return err
	})
	sort.Slice(images, func(i, j int) bool { return images[i].ID < images[j].ID })
	return images, err
}

// Config returns the parsed OCI image config of img.
func (s *Service) Config(img *store.Image) (*ocispec.Image, error) {
	data, err := s.content.Get(digest.Digest(img.ConfigDigest))
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	return &cfg, nil
}

// User splits an image config's USER into a numeric uid, or a user name when
// it is not numeric, as CRI's Image.uid / Image.username want.
func User(cfg *ocispec.Image) (uid *int64, username string) {
	user, _, _ := strings.Cut(cfg.Config.User, ":")
	if user == "" {
		return nil, ""
	}
	var n int64
	if _, err := fmt.Sscanf(user, "%d", &n); err == nil && fmt.Sprint(n) == user {
		return &n, ""
	}
	return nil, user
}

// Remove deletes the image ref names, with all its tags and digests, as
// CRI's RemoveImage means (critest: "removing image by one tag should remove
// all tags"), then the layers no image uses any more. An unknown image is
// not an error: RemoveImage is idempotent.
func (s *Service) Remove(ctx context.Context, ref string) error {
	removed := false
	err := s.db.Update(func(tx *store.Tx) error {
		img, err := lookup(tx, ref)
		if errdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = true
		return tx.DeleteImage(img.ID)
	})
	if err != nil {
		return fmt.Errorf("remove image %q: %w", ref, err)
	}
	if removed {
		if err := s.gc(ctx, false); err != nil {
			s.log.Warn("garbage collection after image removal", "image", ref, "error", err)
		}
	}
	return nil
}

func without(list []string, v string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// Usage is the space images take: bytes and inodes of their snapshots.
type Usage struct {
	Bytes, Inodes uint64
}

// Usage sums the recorded sizes of all snapshots.
func (s *Service) Usage() (Usage, error) {
	var u Usage
	err := s.db.View(func(tx *store.Tx) error {
		snaps, err := tx.Snapshots()
		for _, sn := range snaps {
			u.Bytes += uint64(sn.Size)
			u.Inodes += uint64(sn.Inodes)
		}
		return err
	})
	return u, err
}
