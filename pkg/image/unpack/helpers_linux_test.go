package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	testTime  = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	testTime2 = time.Date(2019, 1, 2, 3, 4, 5, 987654321, time.UTC)
)

type entry struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: testTime}, body: body}
}

func dirE(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: testTime}}
}

func symlinkE(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func hardlinkE(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: testTime}}
}

// with returns e changed by f.
func with(e entry, f func(h *tar.Header)) entry {
	f(&e.hdr)
	return e
}

func xattrs(kv ...string) func(h *tar.Header) {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			h.PAXRecords[paxXattrPrefix+kv[i]] = kv[i+1]
		}
	}
}

// tarOf builds a PAX tar of entries, ending with the end-of-archive blocks.
func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a layer directory with a sibling directory holding a victim
// file that no layer may reach.
type sandbox struct {
	parent, root, outside, victim string
	victimStat                    unix.Stat_t
}

const victimContent = "victim content"

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	p := t.TempDir()
	s := &sandbox{parent: p, root: filepath.Join(p, "root"), outside: filepath.Join(p, "outside")}
	s.victim = filepath.Join(s.outside, "victim")
	for _, d := range []string{s.root, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.victim, []byte(victimContent), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(s.victim, &s.victimStat); err != nil {
		t.Fatal(err)
	}
	// A layer may leave read-only directories that only root could clean.
	t.Cleanup(func() {
		filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return s
}

// checkContained fails t if anything outside the layer directory changed.
func (s *sandbox) checkContained(t testing.TB) {
	t.Helper()
	if got := dirNames(t, s.parent); !slices.Equal(got, []string{"outside", "root"}) {
		t.Errorf("entries next to the layer directory: %v", got)
	}
	if got := dirNames(t, s.outside); !slices.Equal(got, []string{"victim"}) {
		t.Errorf("entries in the outside directory: %v", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.victim, &st); err != nil {
		t.Fatalf("victim: %v", err)
	}
	v := s.victimStat
	if st.Ino != v.Ino || st.Mode != v.Mode || st.Uid != v.Uid || st.Gid != v.Gid || st.Nlink != v.Nlink ||
		st.Size != v.Size || st.Mtim != v.Mtim || st.Ctim != v.Ctim {
		t.Errorf("victim changed: %+v, was %+v", st, v)
	}
	if b, err := os.ReadFile(s.victim); err != nil || string(b) != victimContent {
		t.Errorf("victim content %q, %v", b, err)
	}
	var ost unix.Stat_t
	if err := unix.Lstat(s.outside, &ost); err != nil || ost.Mode&0o7777 != 0o755 {
		t.Errorf("outside dir mode %o, %v", ost.Mode, err)
	}
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func applyBytes(dir string, data []byte, opts Options) (Result, error) {
	return Apply(context.Background(), dir, bytes.NewReader(data), opts)
}

func lstat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return st
}

func isRoot() bool { return os.Geteuid() == 0 }

func testOpts() Options { return Options{NoChown: !isRoot()} }
