package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// threadNetNS identifies the network namespace of the calling thread.
func threadNetNS() (string, error) {
	return os.Readlink("/proc/thread-self/ns/net")
}

func TestNewDoRemove(t *testing.T) {
	requireRoot(t)
	pinDir := filepath.Join(t.TempDir(), "netns")
	host, err := threadNetNS()
	if err != nil {
		t.Fatal(err)
	}

	ns := newPin(t, pinDir, "sb1")
	if got, want := ns.Path(), filepath.Join(pinDir, "sb1"); got != want {
		t.Fatalf("Path() = %q, want %q", got, want)
	}
	if !IsPinned(ns.Path()) {
		t.Fatalf("IsPinned(%s) = false after New", ns.Path())
	}

	var inside string
	var ifaces []net.Interface
	err = ns.Do(func() error {
		var err error
		if inside, err = threadNetNS(); err != nil {
			return err
		}
		ifaces, err = net.Interfaces()
		return err
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if inside == host {
		t.Fatalf("Do ran in the host namespace %s", host)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp != 0 {
		t.Fatalf("new namespace interfaces = %+v, want only lo, down", ifaces)
	}
	if got, _ := threadNetNS(); got != host {
		t.Fatalf("caller's namespace changed to %s", got)
	}

	sentinel := errors.New("from fn")
	if err := ns.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Do error = %v, want fn's error", err)
	}

	if err := ns.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(ns.Path()); !os.IsNotExist(err) {
		t.Fatalf("pin still present after Remove: %v", err)
	}
	if IsPinned(ns.Path()) {
		t.Fatal("IsPinned true after Remove")
	}
	if err := ns.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := ns.Do(func() error { return nil }); !errdefs.IsNotFound(err) {
		t.Fatalf("Do after Remove = %v, want ErrNotFound", err)
	}
}

func TestWithLoopbackUpRaisesLo(t *testing.T) {
	requireRoot(t)
	ns := newPin(t, t.TempDir(), "lo-up", WithLoopbackUp())
	err := ns.Do(func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if lo.Flags&net.FlagUp == 0 {
			return fmt.Errorf("lo is down: %v", lo.Flags)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDoRepanics(t *testing.T) {
	requireRoot(t)
	ns := newPin(t, t.TempDir(), "panics")
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want boom", r)
		}
	}()
	_ = ns.Do(func() error { panic("boom") })
}

func TestNewRejects(t *testing.T) {
	requireRoot(t)
	pinDir := t.TempDir()
	newPin(t, pinDir, "taken")
	for _, tc := range []struct {
		name string
		want error
	}{
		{"", errdefs.ErrInvalidArgument},
		{".", errdefs.ErrInvalidArgument},
		{"..", errdefs.ErrInvalidArgument},
		{"a/b", errdefs.ErrInvalidArgument},
		{"../escape", errdefs.ErrInvalidArgument},
		{"taken", errdefs.ErrAlreadyExists},
	} {
		ns, err := New(pinDir, tc.name)
		if !errors.Is(err, tc.want) {
			if ns != nil {
				_ = ns.Remove()
			}
			t.Errorf("New(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if !IsPinned(filepath.Join(pinDir, "taken")) {
		t.Fatal("a rejected New disturbed the existing pin")
	}
}

func TestNewConcurrent(t *testing.T) {
	requireRoot(t)
	const n = 24
	pinDir := t.TempDir()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		pins []*NetNS
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			ns, err := New(pinDir, fmt.Sprintf("c%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			pins = append(pins, ns)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, ns := range pins {
			if err := ns.Remove(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d New failed, first: %v", len(errs), n, errs[0])
	}

	host, _ := threadNetNS()
	seen := map[string]string{}
	for _, ns := range pins {
		var id string
		if err := ns.Do(func() (err error) { id, err = threadNetNS(); return err }); err != nil {
			t.Fatal(err)
		}
		if id == host {
			t.Fatalf("%s is the host namespace", ns.Name())
		}
		if other, dup := seen[id]; dup {
			t.Fatalf("%s and %s share namespace %s", ns.Name(), other, id)
		}
		seen[id] = ns.Name()
	}
}

func TestLoadAndListPins(t *testing.T) {
	requireRoot(t)
	pinDir := t.TempDir()
	a := newPin(t, pinDir, "a")
	newPin(t, pinDir, "b")
	stale := filepath.Join(pinDir, "stale") // as left by a crash inside New
	if err := os.WriteFile(stale, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(pinDir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}

	pins, err := ListPins(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pins {
		names = append(names, p.Name())
	}
	if fmt.Sprint(names) != "[a b stale]" {
		t.Fatalf("ListPins = %v, want [a b stale]", names)
	}

	got, err := Load(a.Path())
	if err != nil || got.Path() != a.Path() {
		t.Fatalf("Load(pinned) = %v, %v", got, err)
	}
	if _, err := Load(stale); !errdefs.IsNotFound(err) {
		t.Fatalf("Load(stale) = %v, want ErrNotFound", err)
	}
	if _, err := Load(filepath.Join(pinDir, "missing")); !errdefs.IsNotFound(err) {
		t.Fatalf("Load(missing) = %v, want ErrNotFound", err)
	}
	if IsPinned("/proc/self/ns/mnt") {
		t.Fatal("IsPinned accepted a mount namespace")
	}

	for _, p := range pins {
		if p.Name() == "stale" {
			if err := p.Remove(); err != nil {
				t.Fatalf("Remove(stale): %v", err)
			}
		}
	}
	if pins, _ := ListPins(filepath.Join(pinDir, "nope")); pins != nil {
		t.Fatalf("ListPins(missing dir) = %v", pins)
	}
}
