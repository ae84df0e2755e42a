// Package store is crid's metadata database: typed records for sandboxes,
// containers, images and snapshots kept in bbolt, with a schema version.
// bbolt types never leave this package.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// SchemaVersion is the layout of the records this build writes. Open refuses
// a database written by a newer schema.
const SchemaVersion = 1

var (
	bucketMeta       = []byte("meta")
	bucketSandboxes  = []byte("sandboxes")
	bucketContainers = []byte("containers")
	bucketImages     = []byte("images")
	bucketSnapshots  = []byte("snapshots")
	keySchema        = []byte("schema")
	keyPodCIDR       = []byte("pod_cidr")
)

// DB is an open metadata database.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens (creating if needed) the database at path. It waits at most
// timeout for the file lock, so a second crid on the same root fails fast.
func Open(path string, timeout time.Duration) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database dir: %w", err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("database %s is locked by another process (is another crid running on this root?): %w", path, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketSandboxes, bucketContainers, bucketImages, bucketSnapshots} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			var have int
			if err := json.Unmarshal(v, &have); err != nil {
				return fmt.Errorf("database %s: corrupt schema version: %w", db.path, err)
			}
			if have > SchemaVersion {
				return fmt.Errorf("database %s has schema %d, newer than this crid's %d: %w", db.path, have, SchemaVersion, errdefs.ErrFailedPrecondition)
			}
		}
		v, _ := json.Marshal(SchemaVersion)
		return meta.Put(keySchema, v)
	})
}

// Close releases the database and its lock.
func (db *DB) Close() error { return db.bolt.Close() }

// Schema returns the schema version stored in the database.
func (db *DB) Schema() (int, error) {
	var v int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketMeta).Get(keySchema), &v)
	})
	return v, err
}

// Update runs fn in a read-write transaction; an error from fn rolls back
// everything fn wrote.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is a transaction; its methods read and write typed records.
type Tx struct{ tx *bolt.Tx }

func put[T any](t *Tx, bucket []byte, kind, key string, v *T) error {
	if key == "" {
		return fmt.Errorf("put %s: empty key: %w", kind, errdefs.ErrInvalidArgument)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, key, err)
	}
	return t.tx.Bucket(bucket).Put([]byte(key), data)
}

func get[T any](t *Tx, bucket []byte, kind, key string) (*T, error) {
	data := t.tx.Bucket(bucket).Get([]byte(key))
	if data == nil {
		return nil, fmt.Errorf("%s %q: %w", kind, key, errdefs.ErrNotFound)
	}
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", kind, key, err)
	}
	return v, nil
}

func list[T any](t *Tx, bucket []byte, kind string) ([]*T, error) {
	var out []*T
	err := t.tx.Bucket(bucket).ForEach(func(k, data []byte) error {
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("decode %s %s: %w", kind, k, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// del removes a record; deleting a missing one is not an error.
func del(t *Tx, bucket []byte, key string) error {
	return t.tx.Bucket(bucket).Delete([]byte(key))
}

// PutImage writes an image record keyed by its ID.
func (t *Tx) PutImage(v *Image) error { return put(t, bucketImages, "image", v.ID, v) }

// Image reads an image record; errdefs.ErrNotFound if absent.
func (t *Tx) Image(id string) (*Image, error) { return get[Image](t, bucketImages, "image", id) }

// Images lists all image records.
func (t *Tx) Images() ([]*Image, error) { return list[Image](t, bucketImages, "image") }

// DeleteImage removes an image record.
func (t *Tx) DeleteImage(id string) error { return del(t, bucketImages, id) }

// PutSnapshot writes a snapshot record keyed by its chain ID.
func (t *Tx) PutSnapshot(v *Snapshot) error { return put(t, bucketSnapshots, "snapshot", v.ChainID, v) }

// Snapshot reads a snapshot record; errdefs.ErrNotFound if absent.
func (t *Tx) Snapshot(chainID string) (*Snapshot, error) {
	return get[Snapshot](t, bucketSnapshots, "snapshot", chainID)
}

// Snapshots lists all snapshot records.
func (t *Tx) Snapshots() ([]*Snapshot, error) { return list[Snapshot](t, bucketSnapshots, "snapshot") }

// NextSnapshotSeq returns a new number for naming a snapshot directory; short
// names keep a many-layer overlay mount's options within a page.
func (t *Tx) NextSnapshotSeq() (uint64, error) { return t.tx.Bucket(bucketSnapshots).NextSequence() }

// DeleteSnapshot removes a snapshot record.
func (t *Tx) DeleteSnapshot(chainID string) error { return del(t, bucketSnapshots, chainID) }

// PutSandbox writes a sandbox record keyed by its ID.
func (t *Tx) PutSandbox(v *Sandbox) error { return put(t, bucketSandboxes, "sandbox", v.ID, v) }

// Sandbox reads a sandbox record; errdefs.ErrNotFound if absent.
func (t *Tx) Sandbox(id string) (*Sandbox, error) {
	return get[Sandbox](t, bucketSandboxes, "sandbox", id)
}

// Sandboxes lists all sandbox records.
func (t *Tx) Sandboxes() ([]*Sandbox, error) { return list[Sandbox](t, bucketSandboxes, "sandbox") }

// DeleteSandbox removes a sandbox record.
func (t *Tx) DeleteSandbox(id string) error { return del(t, bucketSandboxes, id) }

// PutContainer writes a container record keyed by its ID.
func (t *Tx) PutContainer(v *Container) error {
	return put(t, bucketContainers, "container", v.ID, v)
}

// Container reads a container record; errdefs.ErrNotFound if absent.
func (t *Tx) Container(id string) (*Container, error) {
	return get[Container](t, bucketContainers, "container", id)
}

// Containers lists all container records.
func (t *Tx) Containers() ([]*Container, error) {
	return list[Container](t, bucketContainers, "container")
}

// DeleteContainer removes a container record.
func (t *Tx) DeleteContainer(id string) error { return del(t, bucketContainers, id) }

// SetPodCIDR stores the pod CIDR kubelet sent through UpdateRuntimeConfig.
func (t *Tx) SetPodCIDR(cidr string) error {
	return t.tx.Bucket(bucketMeta).Put(keyPodCIDR, []byte(cidr))
}

// PodCIDR returns the stored pod CIDR, or "" if none was set.
func (t *Tx) PodCIDR() string { return string(t.tx.Bucket(bucketMeta).Get(keyPodCIDR)) }
