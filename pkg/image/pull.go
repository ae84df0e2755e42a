package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image/registry"
	"github.com/crid-dev/crid/pkg/image/unpack"
	"github.com/crid-dev/crid/pkg/store"
)

// pullCall is one pull shared by every caller asking for the same image.
type pullCall struct {
	done    chan struct{}
	img     *store.Image
	err     error
	waiters int
	cancel  context.CancelFunc
}

// unpackCall is one layer being unpacked, shared by concurrent pulls.
type unpackCall struct {
	done chan struct{}
	err  error
}

// Pull fetches ref into the store and returns its record. Callers pulling
// the same image with the same credentials share one pull; it is cancelled
// only when every caller has given up.
func (s *Service) Pull(ctx context.Context, refStr string, creds *registry.Credentials) (*store.Image, error) {
	r, err := ParseRef(refStr)
	if err != nil {
		return nil, err
	}
	key := r.String() + "\x00" + creds.Key()
	s.mu.Lock()
	c := s.pulls[key]
	if c == nil {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &pullCall{done: make(chan struct{}), cancel: cancel}
		s.pulls[key] = c
		go func() {
			c.img, c.err = s.pull(pctx, r, creds)
			cancel()
			s.mu.Lock()
			if s.pulls[key] == c {
				delete(s.pulls, key)
			}
			s.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	s.mu.Unlock()

	select {
	case <-c.done:
		return c.img, c.err
	case <-ctx.Done():
		s.mu.Lock()
		if c.waiters--; c.waiters == 0 {
			c.cancel()
			if s.pulls[key] == c {
				delete(s.pulls, key)
			}
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("pull %s: %w", r, ctx.Err())
	}
}

func (s *Service) pull(ctx context.Context, r Ref, creds *registry.Credentials) (img *store.Image, err error) {
	start := time.Now()
	resolved, err := s.registry.Pull(ctx, r.Named, creds)
	if err != nil {
		return nil, err
	}
	m := resolved.Manifest
	var cfg ocispec.Image
	if err := json.Unmarshal(resolved.ConfigData, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: parse config %s: %v: %w", r, m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: config lists %d layers, manifest %d: %w", r, len(diffIDs), len(m.Layers), errdefs.ErrInvalidArgument)
	}
	chain := chainIDs(diffIDs)
	keys := append([]string{resolved.ManifestDigest.String(), m.Config.Digest.String()}, chain...)
	for _, d := range resolved.IndexDigests {
		keys = append(keys, d.String())
	}
	release := s.lease(keys...)
	defer func() {
		release()
		if err != nil {
			// Drop whatever this pull unpacked that no image needs.
			if gcErr := s.gc(context.WithoutCancel(ctx), false); gcErr != nil {
				s.log.Warn("clean up after failed pull", "image", r.String(), "error", gcErr)
			}
		}
	}()

	blobs := map[digest.Digest][]byte{resolved.ManifestDigest: resolved.ManifestData, m.Config.Digest: resolved.ConfigData}
	for d, data := range resolved.IndexData {
		blobs[d] = data
	}
	for d, data := range blobs {
		if err := s.content.Put(d, data); err != nil {
			return nil, err
		}
	}

	if err := s.unpackLayers(ctx, r, creds, m.Layers, diffIDs, chain); err != nil {
		return nil, err
	}

	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	img = &store.Image{
		ID:             m.Config.Digest.String(),
		ManifestDigest: resolved.ManifestDigest.String(),
		ConfigDigest:   m.Config.Digest.String(),
		ChainIDs:       chain,
		Size:           size,
		CreatedAt:      time.Now().UTC(),
	}
	for _, d := range resolved.IndexDigests {
		img.IndexDigests = append(img.IndexDigests, d.String())
	}
	repoDigest := r.Name + "@" + resolved.TopDigest.String()
	err = s.db.Update(func(tx *store.Tx) error {
		if old, err := tx.Image(img.ID); err == nil {
			img.RepoTags, img.RepoDigests, img.CreatedAt, img.Pinned = old.RepoTags, old.RepoDigests, old.CreatedAt, old.Pinned
		}
		if tag := r.TagRef(); tag != "" && !contains(img.RepoTags, tag) {
			img.RepoTags = append(img.RepoTags, tag)
			if err := untagOthers(tx, img.ID, tag); err != nil {
				return err
			}
		}
		if !contains(img.RepoDigests, repoDigest) {
			img.RepoDigests = append(img.RepoDigests, repoDigest)
		}
		return tx.PutImage(img)
	})
	if err != nil {
		return nil, fmt.Errorf("record image %s: %w", r, err)
	}
	s.log.Info("pulled image", "ref", r.String(), "id", img.ID, "layers", len(chain), "duration", time.Since(start))
	return img, nil
}

// untagOthers moves tag: an image that had it loses it (it stays, maybe untagged).
func untagOthers(tx *store.Tx, keepID, tag string) error {
	images, err := tx.Images()
	if err != nil {
		return err
	}
	for _, other := range images {
		if other.ID != keepID && contains(other.RepoTags, tag) {
			other.RepoTags = without(other.RepoTags, tag)
			if err := tx.PutImage(other); err != nil {
				return err
			}
		}
	}
	return nil
}

// unpackLayers makes sure a snapshot exists for every layer, fetching and
// unpacking missing ones in parallel (a layer does not wait for the one below).
func (s *Service) unpackLayers(ctx context.Context, r Ref, creds *registry.Credentials, layers []ocispec.Descriptor, diffIDs []digest.Digest, chain []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.maxLayer)
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i := range layers {
		parent := ""
		if i > 0 {
			parent = chain[i-1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if errs[i] = s.ensureLayer(ctx, r, creds, layers[i], diffIDs[i], chain[i], parent); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the first real failure, not the cancellations it caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

func (s *Service) ensureLayer(ctx context.Context, r Ref, creds *registry.Credentials, layer ocispec.Descriptor, diffID digest.Digest, chainID, parent string) error {
	s.mu.Lock()
	if c := s.unpacks[chainID]; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	exists := false
	if err := s.db.View(func(tx *store.Tx) error {
		_, err := tx.Snapshot(chainID)
		exists = err == nil
		return nil
	}); err != nil {
		s.mu.Unlock()
		return err
	}
	if exists {
		s.mu.Unlock()
		return nil
	}
	c := &unpackCall{done: make(chan struct{})}
	s.unpacks[chainID] = c
	s.mu.Unlock()

	c.err = s.unpackLayer(ctx, r, creds, layer, diffID, chainID, parent)
	s.mu.Lock()
	delete(s.unpacks, chainID)
	s.mu.Unlock()
	close(c.done)
	return c.err
}

// unpackLayer streams one layer from the registry through digest
// verification and decompression into a fresh snapshot directory, then
// records it. Nothing is left behind on failure.
func (s *Service) unpackLayer(ctx context.Context, r Ref, creds *registry.Credentials, layer ocispec.Descriptor, diffID digest.Digest, chainID, parent string) (err error) {
	var seq uint64
	if err := s.db.Update(func(tx *store.Tx) (err error) { seq, err = tx.NextSnapshotSeq(); return err }); err != nil {
		return fmt.Errorf("allocate snapshot: %w", err)
	}
	ingest := filepath.Join(s.snapDir, ingestDirName(seq))
	final := filepath.Join(s.snapDir, snapshotDirName(seq))
	if err := os.Mkdir(ingest, 0o755); err != nil {
		return fmt.Errorf("create snapshot dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(ingest)
			os.RemoveAll(final)
		}
	}()
	blob, err := s.registry.FetchBlob(ctx, r.Named, creds, layer)
	if err != nil {
		return err
	}
	defer blob.Close()
	tarStream, err := unpack.Decompress(blob, layer.MediaType)
	if err != nil {
		return fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	defer tarStream.Close()
	res, err := unpack.Apply(ctx, ingest, tarStream, unpack.Options{})
	if err != nil {
		return fmt.Errorf("unpack layer %s of %s: %w", layer.Digest, r, err)
	}
	// Read what the decompressor left so the blob's digest is checked in full.
	if _, err := io.Copy(io.Discard, blob); err != nil {
		return fmt.Errorf("layer %s of %s: %w", layer.Digest, r, err)
	}
	if res.DiffID != diffID {
		return fmt.Errorf("layer %s of %s: uncompressed digest %s does not match config diff ID %s: %w", layer.Digest, r, res.DiffID, diffID, errdefs.ErrInvalidArgument)
	}
	if err := os.Rename(ingest, final); err != nil {
		return fmt.Errorf("commit snapshot: %w", err)
	}
	return s.db.Update(func(tx *store.Tx) error {
		return tx.PutSnapshot(&store.Snapshot{
			ChainID: chainID, DiffID: diffID.String(), Parent: parent, Dir: snapshotDirName(seq),
			Size: res.Size, Inodes: res.Inodes, CreatedAt: time.Now().UTC(),
		})
	})
}

// chainIDs computes the OCI chain ID of each layer: the first is its diff
// ID, each next one sha256(parent + " " + diffID).
func chainIDs(diffIDs []digest.Digest) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d.String()
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d.String()))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}
