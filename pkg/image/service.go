// Package image pulls OCI images from registries into overlay snapshots and
// keeps their metadata: references, content, snapshots, image records and
// garbage collection. pkg/server's ImageService is a thin layer over it.
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image/registry"
	"github.com/crid-dev/crid/pkg/store"
)

// Service owns images: pulls, lookups, removal and garbage collection.
type Service struct {
	db       *store.DB
	content  *contentStore
	snapDir  string
	registry *registry.Client
	maxLayer int // layers fetched at once per pull
	log      *slog.Logger

	// mu guards the maps below. GC reads leases and the database under it,
	// and pulls release leases under it only after committing, so nothing a
	// pull holds or has just committed is ever collected.
	mu      sync.Mutex
	leases  map[string]int         // chain IDs and content digests in use by pulls
	pulls   map[string]*pullCall   // in-flight pulls by ref (+ credentials)
	unpacks map[string]*unpackCall // in-flight layer unpacks by chain ID
}

// Options configure a Service.
type Options struct {
	Root           string // crid's persistent root; content and snapshots go below it
	Registry       *registry.Client
	MaxConcurrency int
	Log            *slog.Logger
}

// NewService opens the image store below opts.Root and removes whatever an
// interrupted pull left behind (no pull can be in flight yet).
func NewService(ctx context.Context, db *store.DB, opts Options) (*Service, error) {
	content, err := newContentStore(opts.Root)
	if err != nil {
		return nil, err
	}
	snapDir := filepath.Join(opts.Root, "snapshots")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot dir: %w", err)
	}
	s := &Service{
		db: db, content: content, snapDir: snapDir, registry: opts.Registry,
		maxLayer: max(opts.MaxConcurrency, 1), log: opts.Log,
		leases: map[string]int{}, pulls: map[string]*pullCall{}, unpacks: map[string]*unpackCall{},
	}
	if err := s.gc(ctx, true); err != nil {
		return nil, fmt.Errorf("clean image store at start: %w", err)
	}
	return s, nil
}

// SnapshotDirs returns the layer directories of an image, top layer first,
// as overlay lowerdirs want them.
func (s *Service) SnapshotDirs(img *store.Image) ([]string, error) {
	dirs := make([]string, len(img.ChainIDs))
	err := s.db.View(func(tx *store.Tx) error {
		for i, id := range img.ChainIDs {
			snap, err := tx.Snapshot(id)
			if err != nil {
				return fmt.Errorf("image %s layer %d: %w", img.ID, i, err)
			}
			dirs[len(dirs)-1-i] = filepath.Join(s.snapDir, snap.Dir)
		}
		return nil
	})
	return dirs, err
}

// SnapshotRoot is the directory holding every snapshot (for fs usage).
func (s *Service) SnapshotRoot() string { return s.snapDir }

func (s *Service) lease(keys ...string) func() {
	s.mu.Lock()
	for _, k := range keys {
		s.leases[k]++
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		for _, k := range keys {
			if s.leases[k]--; s.leases[k] <= 0 {
				delete(s.leases, k)
			}
		}
		s.mu.Unlock()
	}
}

// GC deletes snapshots nothing uses any more, e.g. those of a removed
// image once the last container made from it is removed.
func (s *Service) GC(ctx context.Context) error { return s.gc(ctx, false) }

// gc deletes snapshots and content no image, container or pull holds.
// At start (startup) it also removes unrecorded directories and temp files.
func (s *Service) gc(ctx context.Context, startup bool) error {
	var garbage []*store.Snapshot
	keepContent := map[digest.Digest]bool{}
	keepDirs := map[string]bool{}
	s.mu.Lock()
	err := s.db.Update(func(tx *store.Tx) error {
		images, err := tx.Images()
		if err != nil {
			return err
		}
		used := map[string]bool{}
		for k := range s.leases {
			used[k] = true
			keepContent[digest.Digest(k)] = true
		}
		containers, err := tx.Containers()
		if err != nil {
			return err
		}
		for _, c := range containers {
			for _, chain := range c.ChainIDs {
				used[chain] = true
			}
		}
		for _, img := range images {
			for _, c := range img.ChainIDs {
				used[c] = true
			}
			keepContent[digest.Digest(img.ManifestDigest)] = true
			keepContent[digest.Digest(img.ConfigDigest)] = true
			for _, d := range img.IndexDigests {
				keepContent[digest.Digest(d)] = true
			}
		}
		snaps, err := tx.Snapshots()
		if err != nil {
			return err
		}
		for _, sn := range snaps {
			if used[sn.ChainID] {
				keepDirs[sn.Dir] = true
				continue
			}
			if err := tx.DeleteSnapshot(sn.ChainID); err != nil {
				return err
			}
			garbage = append(garbage, sn)
		}
		return nil
	})
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	var errs []error
	for _, sn := range garbage {
		s.log.Debug("removing unused snapshot", "chainID", sn.ChainID, "dir", sn.Dir)
		if err := removeSnapshotDir(filepath.Join(s.snapDir, sn.Dir)); err != nil {
			errs = append(errs, err)
		}
	}
	if startup {
		entries, err := os.ReadDir(s.snapDir)
		if err != nil {
			return fmt.Errorf("list snapshots: %w", err)
		}
		for _, e := range entries {
			if !keepDirs[e.Name()] {
				s.log.Info("removing snapshot left by an interrupted pull", "dir", e.Name())
				if err := removeSnapshotDir(filepath.Join(s.snapDir, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := s.content.Prune(keepContent, startup); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeSnapshotDir deletes a layer directory. Layers can hold read-only
// dirs and immutable-looking modes; os.RemoveAll copes as root.
func removeSnapshotDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", dir, err)
	}
	return nil
}

// snapshotDirName names snapshot seq's directory; "ingest-" ones are being
// written and never count as recorded.
func snapshotDirName(seq uint64) string { return strconv.FormatUint(seq, 10) }

func ingestDirName(seq uint64) string { return "ingest-" + strconv.FormatUint(seq, 10) }

// Lookup finds an image by ID ("sha256:<hex>" or the bare hex), by
// reference (name:tag or name@digest, normalized) or by a unique ID prefix.
func (s *Service) Lookup(ref string) (*store.Image, error) {
	var found *store.Image
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		found, err = lookup(tx, ref)
		return err
	})
	return found, err
}

func lookup(tx *store.Tx, ref string) (*store.Image, error) {
	if ref == "" {
		return nil, fmt.Errorf("empty image reference: %w", errdefs.ErrInvalidArgument)
	}
	if id, ok := fullID(ref); ok {
		return tx.Image(id)
	}
	images, err := tx.Images()
	if err != nil {
		return nil, err
	}
	if r, perr := ParseRef(ref); perr == nil {
		for _, img := range images {
			if r.Digest != "" && contains(img.RepoDigests, r.Name+"@"+r.Digest) {
				return img, nil
			}
			if r.Digest == "" && contains(img.RepoTags, r.String()) {
				return img, nil
			}
		}
	}
	if isHex(ref) && len(ref) >= 4 {
		var match *store.Image
		for _, img := range images {
			if strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), ref) {
				if match != nil {
					return nil, fmt.Errorf("image ID prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
				}
				match = img
			}
		}
		if match != nil {
			return match, nil
		}
	}
	if _, perr := ParseRef(ref); perr != nil && !isHex(ref) {
		return nil, perr
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// fullID recognises a complete image ID with or without its "sha256:".
func fullID(ref string) (string, bool) {
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) == 64 && isHex(hex) {
		return "sha256:" + hex, true
	}
	return "", false
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
