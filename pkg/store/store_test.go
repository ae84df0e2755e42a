package store

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestRecordsSurviveReopen(t *testing.T) {
	db, path := openTemp(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	img := &Image{ID: "sha256:abc", RepoTags: []string{"docker.io/library/busybox:latest"}, ChainIDs: []string{"sha256:1", "sha256:2"}, Size: 42, CreatedAt: now}
	snap := &Snapshot{ChainID: "sha256:1", DiffID: "sha256:d1", Dir: "1", Size: 7, CreatedAt: now}
	sb := &Sandbox{ID: "sb1", Name: "pod", Namespace: "ns", UID: "u", State: StateReady, CreatedAt: now, Labels: map[string]string{"a": "b"}}
	ctr := &Container{ID: "c1", SandboxID: "sb1", Name: "app", State: StateRunning, CreatedAt: now, StartedAt: now}
	err := db.Update(func(tx *Tx) error {
		return errors.Join(tx.PutImage(img), tx.PutSnapshot(snap), tx.PutSandbox(sb), tx.PutContainer(ctr), tx.SetPodCIDR("10.88.0.0/16"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	err = db2.View(func(tx *Tx) error {
		gotImg, err := tx.Image("sha256:abc")
		if err != nil || !reflect.DeepEqual(gotImg, img) {
			t.Errorf("image = %+v, %v; want %+v", gotImg, err, img)
		}
		gotSnap, err := tx.Snapshot("sha256:1")
		if err != nil || !reflect.DeepEqual(gotSnap, snap) {
			t.Errorf("snapshot = %+v, %v", gotSnap, err)
		}
		gotSb, err := tx.Sandbox("sb1")
		if err != nil || !reflect.DeepEqual(gotSb, sb) {
			t.Errorf("sandbox = %+v, %v", gotSb, err)
		}
		gotCtr, err := tx.Container("c1")
		if err != nil || !reflect.DeepEqual(gotCtr, ctr) {
			t.Errorf("container = %+v, %v", gotCtr, err)
		}
		if cidr := tx.PodCIDR(); cidr != "10.88.0.0/16" {
			t.Errorf("pod CIDR = %q", cidr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := db2.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("schema = %d, %v", v, err)
	}
}

func TestFailedUpdateRollsBack(t *testing.T) {
	db, _ := openTemp(t)
	boom := errors.New("boom")
	err := db.Update(func(tx *Tx) error {
		if err := tx.PutImage(&Image{ID: "sha256:x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	db.View(func(tx *Tx) error {
		if _, err := tx.Image("sha256:x"); !errdefs.IsNotFound(err) {
			t.Errorf("image written by a failed transaction is visible: %v", err)
		}
		return nil
	})
}

func TestListAndDelete(t *testing.T) {
	db, _ := openTemp(t)
	db.Update(func(tx *Tx) error {
		for _, id := range []string{"a", "b", "c"} {
			if err := tx.PutContainer(&Container{ID: id}); err != nil {
				return err
			}
		}
		return nil
	})
	db.Update(func(tx *Tx) error {
		if err := tx.DeleteContainer("b"); err != nil {
			t.Error(err)
		}
		if err := tx.DeleteContainer("missing"); err != nil {
			t.Errorf("deleting a missing record: %v", err)
		}
		return nil
	})
	db.View(func(tx *Tx) error {
		list, err := tx.Containers()
		if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "c" {
			t.Errorf("list = %v, %v", list, err)
		}
		return nil
	})
	err := db.Update(func(tx *Tx) error { return tx.PutSandbox(&Sandbox{}) })
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty key accepted: %v", err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	_, err := Open(path, 200*time.Millisecond)
	if err == nil {
		t.Fatal("second Open of a held database succeeded")
	}
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "another crid") {
		t.Fatalf("unclear error: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second Open did not honour its timeout")
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	db, path := openTemp(t)
	db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("99"))
	})
	db.Close()
	if _, err := Open(path, time.Second); err == nil || !strings.Contains(err.Error(), "schema 99") {
		t.Fatalf("newer schema accepted: %v", err)
	}
}
