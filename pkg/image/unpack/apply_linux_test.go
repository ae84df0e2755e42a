package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func wantMode(t *testing.T, root, name string, want uint32) {
	t.Helper()
	if got := lstat(t, filepath.Join(root, name)).Mode; got != want {
		t.Errorf("%s: mode %o, want %o", name, got, want)
	}
}

func wantMtime(t *testing.T, root, name string, want time.Time) {
	t.Helper()
	st := lstat(t, filepath.Join(root, name))
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
		t.Errorf("%s: mtime %v, want %v", name, got, want)
	}
}

func wantOwner(t *testing.T, root, name string, uid, gid uint32) {
	t.Helper()
	if st := lstat(t, filepath.Join(root, name)); st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", name, st.Uid, st.Gid, uid, gid)
	}
}

func wantContent(t *testing.T, root, name, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil || string(b) != want {
		t.Errorf("%s: content %q (%v), want %q", name, b, err, want)
	}
}

func wantXattr(t *testing.T, root, name, attr, want string) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(filepath.Join(root, name), attr, buf)
	if want == "" {
		if !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s: xattr %s = %q, %v; want none", name, attr, buf[:max(n, 0)], err)
		}
		return
	}
	if err != nil || string(buf[:n]) != want {
		t.Errorf("%s: xattr %s = %q, %v; want %q", name, attr, buf[:max(n, 0)], err, want)
	}
}

func wantWhiteout(t *testing.T, root, name string) {
	t.Helper()
	st := lstat(t, filepath.Join(root, name))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("%s: not a 0/0 whiteout: mode %o rdev %d", name, st.Mode, st.Rdev)
	}
}

func wantAbsent(t *testing.T, root, name string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: exists (%v), want absent", name, err)
	}
}

func TestApplyEntries(t *testing.T) {
	owner := func(uid, gid int) func(*tar.Header) { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }
	mode := func(m int64) func(*tar.Header) { return func(h *tar.Header) { h.Mode = m } }
	tests := []struct {
		name      string
		needsRoot bool
		entries   []entry
		check     func(t *testing.T, s *sandbox, res Result)
	}{{
		name: "regular file content, mode and times",
		entries: []entry{with(reg("f", "hello"), func(h *tar.Header) {
			h.Mode, h.ModTime, h.AccessTime = 0o640, testTime, testTime2
		})},
		check: func(t *testing.T, s *sandbox, res Result) {
			if st := lstat(t, filepath.Join(s.root, "f")); !time.Unix(st.Atim.Unix()).Equal(testTime2) {
				t.Errorf("atime %v", time.Unix(st.Atim.Unix()))
			}
			wantContent(t, s.root, "f", "hello") // updates atime
			wantMode(t, s.root, "f", unix.S_IFREG|0o640)
			wantMtime(t, s.root, "f", testTime)
			if res.Size != 5 || res.Inodes != 2 {
				t.Errorf("result %+v, want size 5 inodes 2", res)
			}
		},
	}, {
		name:      "ownership and special mode bits",
		needsRoot: true,
		entries: []entry{
			with(reg("suid", "x"), func(h *tar.Header) { h.Mode, h.Uid, h.Gid = 0o4755, 1000, 1001 }),
			with(reg("sgid", "x"), func(h *tar.Header) { h.Mode, h.Uid, h.Gid = 0o2711, 5, 6 }),
			with(dirE("tmp"), func(h *tar.Header) { h.Mode, h.Uid, h.Gid = 0o1777, 7, 8 }),
			with(symlinkE("l", "suid"), owner(9, 10)),
		},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.root, "suid", unix.S_IFREG|0o4755)
			wantOwner(t, s.root, "suid", 1000, 1001)
			wantMode(t, s.root, "sgid", unix.S_IFREG|0o2711)
			wantOwner(t, s.root, "sgid", 5, 6)
			wantMode(t, s.root, "tmp", unix.S_IFDIR|0o1777)
			wantOwner(t, s.root, "tmp", 7, 8)
			wantOwner(t, s.root, "l", 9, 10)
			wantOwner(t, s.root, "suid", 1000, 1001) // not followed from l
		},
	}, {
		name: "directory mode and mtime set after its contents",
		entries: []entry{
			with(dirE("ro/"), func(h *tar.Header) { h.Mode, h.ModTime = 0o555, testTime2 }),
			reg("ro/f", "a"),
			dirE("ro/sub/"),
			reg("ro/sub/g", "b"),
		},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.root, "ro", unix.S_IFDIR|0o555)
			wantMtime(t, s.root, "ro", testTime2)
			wantMtime(t, s.root, "ro/sub", testTime)
			wantContent(t, s.root, "ro/sub/g", "b")
		},
	}, {
		name:    "root directory entry",
		entries: []entry{with(dirE("./"), func(h *tar.Header) { h.Mode, h.ModTime = 0o750, testTime2 }), reg("./f", "x")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.parent, "root", unix.S_IFDIR|0o750)
			wantMtime(t, s.parent, "root", testTime2)
			wantContent(t, s.root, "f", "x")
		},
	}, {
		name:    "implicit parents and cleaned names",
		entries: []entry{reg("a/b/c", "x"), reg("./d//e/../f", "y"), reg("g/../h", "z")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantContent(t, s.root, "a/b/c", "x")
			wantMode(t, s.root, "a/b", unix.S_IFDIR|0o755)
			wantContent(t, s.root, "d/f", "y")
			wantContent(t, s.root, "h", "z")
		},
	}, {
		name:    "absolute names stay inside the layer",
		entries: []entry{reg("/etc/evil", "x"), dirE("/abs/"), symlinkE("//abs/l", "/etc/passwd")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantContent(t, s.root, "etc/evil", "x")
			if got, _ := os.Readlink(filepath.Join(s.root, "abs/l")); got != "/etc/passwd" {
				t.Errorf("symlink target %q", got)
			}
		},
	}, {
		name:    "symlink keeps its own times",
		entries: []entry{reg("f", "x"), with(symlinkE("l", "f"), func(h *tar.Header) { h.ModTime = testTime2 })},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMtime(t, s.root, "l", testTime2)
			wantMtime(t, s.root, "f", testTime)
			wantMode(t, s.root, "l", unix.S_IFLNK|0o777)
		},
	}, {
		name:    "hard links share the inode",
		entries: []entry{with(reg("a/f", "data"), mode(0o700)), hardlinkE("b/h", "a/f"), hardlinkE("h2", "/a/f"), symlinkE("l", "x"), hardlinkE("hl", "l")},
		check: func(t *testing.T, s *sandbox, res Result) {
			f, h, h2 := lstat(t, filepath.Join(s.root, "a/f")), lstat(t, filepath.Join(s.root, "b/h")), lstat(t, filepath.Join(s.root, "h2"))
			if f.Ino != h.Ino || f.Ino != h2.Ino || f.Nlink != 3 {
				t.Errorf("inodes %d %d %d nlink %d", f.Ino, h.Ino, h2.Ino, f.Nlink)
			}
			wantMode(t, s.root, "b/h", unix.S_IFREG|0o700) // the link's header mode is not applied
			wantMode(t, s.root, "hl", unix.S_IFLNK|0o777)
			if res.Inodes != 5 { // root, a, a/f, b, l
				t.Errorf("inodes %d", res.Inodes)
			}
		},
	}, {
		name:      "devices and fifos",
		needsRoot: true,
		entries: []entry{
			{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}},
			{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9, Gid: 6, ModTime: testTime}},
			{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o620, ModTime: testTime2}},
		},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.root, "dev/null", unix.S_IFCHR|0o666)
			if st := lstat(t, filepath.Join(s.root, "dev/null")); st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("dev/null rdev %d", st.Rdev)
			}
			wantMode(t, s.root, "dev/loop9", unix.S_IFBLK|0o660)
			wantOwner(t, s.root, "dev/loop9", 0, 6)
			if st := lstat(t, filepath.Join(s.root, "dev/loop9")); st.Rdev != unix.Mkdev(7, 9) {
				t.Errorf("dev/loop9 rdev %d", st.Rdev)
			}
			wantMode(t, s.root, "fifo", unix.S_IFIFO|0o620)
			wantMtime(t, s.root, "fifo", testTime2)
		},
	}, {
		name:      "xattrs",
		needsRoot: true,
		entries: []entry{
			with(dirE("d/"), xattrs("user.d", "dv", "trusted.t", "tv", "trusted.overlay.opaque", "y")),
			with(reg("d/f", "x"), xattrs("user.f", "fv", "trusted.overlay.redirect", "/etc")),
			with(symlinkE("l", "d"), xattrs("trusted.l", "lv", "user.ignored", "v")),
		},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantXattr(t, s.root, "d", "user.d", "dv")
			wantXattr(t, s.root, "d", "trusted.t", "tv")
			wantXattr(t, s.root, "d", "trusted.overlay.opaque", "")
			wantXattr(t, s.root, "d/f", "user.f", "fv")
			wantXattr(t, s.root, "d/f", "trusted.overlay.redirect", "")
			wantXattr(t, s.root, "l", "trusted.l", "lv")
			wantXattr(t, s.root, "d", "trusted.l", "") // not followed from l
		},
	}, {
		name:      "whiteouts and opaque directories",
		needsRoot: true,
		entries: []entry{
			reg(".wh.gone", ""),
			reg("deep/er/.wh.x", ""),
			dirE("opq/"),
			reg("opq/.wh..wh..opq", ""),
			reg("opq/kept", "k"),
			reg("newopq/.wh..wh..opq", ""),
			reg(".wh..wh.plnk", ""),
			reg("sub/.wh..wh.aufs", ""),
		},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantWhiteout(t, s.root, "gone")
			wantWhiteout(t, s.root, "deep/er/x")
			wantXattr(t, s.root, "opq", opaqueXattr, "y")
			wantContent(t, s.root, "opq/kept", "k")
			wantXattr(t, s.root, "newopq", opaqueXattr, "y")
			wantAbsent(t, s.root, ".wh.gone")
			wantAbsent(t, s.root, "opq/.wh..wh..opq")
			wantAbsent(t, s.root, ".wh..wh.plnk")
			wantAbsent(t, s.root, "plnk")
			wantXattr(t, s.root, "deep", opaqueXattr, "")
		},
	}, {
		name:      "whiteout replaces an earlier entry",
		needsRoot: true,
		entries:   []entry{reg("a/f", "x"), reg("a/.wh.f", ""), dirE("d/"), reg("d/x", ""), reg(".wh.d", "")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantWhiteout(t, s.root, "a/f")
			wantWhiteout(t, s.root, "d")
		},
	}, {
		name:    "file replaces a symlink without following it",
		entries: []entry{symlinkE("l", "../outside/victim"), reg("l", "new")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantContent(t, s.root, "l", "new")
			wantMode(t, s.root, "l", unix.S_IFREG|0o644)
		},
	}, {
		name:    "directory replaces a symlink to a directory",
		entries: []entry{symlinkE("l", "../outside"), with(dirE("l/"), mode(0o777)), reg("l/victim", "x")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.root, "l", unix.S_IFDIR|0o777)
			wantContent(t, s.root, "l/victim", "x")
		},
	}, {
		name:    "file replaces a directory tree",
		entries: []entry{dirE("d/"), reg("d/f", "x"), dirE("d/e/"), reg("d", "file"), reg("d2/f", "y"), hardlinkE("d3", "d2/f"), reg("d2", "z")},
		check: func(t *testing.T, s *sandbox, res Result) {
			wantContent(t, s.root, "d", "file")
			wantContent(t, s.root, "d2", "z")
			wantContent(t, s.root, "d3", "y")
		},
	}, {
		name:    "directory replaces a file, later file replaces earlier",
		entries: []entry{reg("d", "x"), dirE("d/"), reg("d/f", "1"), reg("d/f", "2"), with(symlinkE("s", "f"), mode(0o777)), reg("s", "3")},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.root, "d", unix.S_IFDIR|0o755)
			wantContent(t, s.root, "d/f", "2")
			wantContent(t, s.root, "s", "3")
		},
	}, {
		name: "directory entry for an existing directory updates metadata only",
		entries: []entry{
			with(dirE("d/"), mode(0o700)), reg("d/f", "x"),
			with(dirE("d/"), func(h *tar.Header) { h.Mode, h.ModTime = 0o711, testTime2 }),
		},
		check: func(t *testing.T, s *sandbox, _ Result) {
			wantMode(t, s.root, "d", unix.S_IFDIR|0o711)
			wantMtime(t, s.root, "d", testTime2)
			wantContent(t, s.root, "d/f", "x")
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsRoot && !isRoot() {
				t.Skip("needs root")
			}
			s := newSandbox(t)
			res, err := applyBytes(s.root, tarOf(t, tt.entries...), testOpts())
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			tt.check(t, s, res)
			s.checkContained(t)
		})
	}
}

func TestApplyNoChown(t *testing.T) {
	s := newSandbox(t)
	data := tarOf(t, with(reg("f", "x"), func(h *tar.Header) { h.Uid, h.Gid = 4242, 4343 }))
	if _, err := applyBytes(s.root, data, Options{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	wantOwner(t, s.root, "f", uint32(os.Geteuid()), uint32(os.Getegid()))
}

func TestApplyOwnerUnderSetgidRoot(t *testing.T) {
	if !isRoot() {
		t.Skip("needs root")
	}
	// Files created in a setgid directory inherit its group: the header's
	// owner must still be applied even when it is the caller's.
	s := newSandbox(t)
	if err := os.Chown(s.root, 0, 4242); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.root, 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if _, err := applyBytes(s.root, tarOf(t, reg("f", "x"), dirE("d/"), reg("d/g", "y")), Options{}); err != nil {
		t.Fatal(err)
	}
	wantOwner(t, s.root, "f", 0, 0)
	wantOwner(t, s.root, "d", 0, 0)
	wantOwner(t, s.root, "d/g", 0, 0)
}

func TestApplyNeedsEmptyDir(t *testing.T) {
	s := newSandbox(t)
	data := tarOf(t, reg("f", "x"))
	for _, dir := range []string{s.outside, s.victim, filepath.Join(s.parent, "missing")} {
		if _, err := applyBytes(dir, data, Options{}); err == nil {
			t.Errorf("Apply(%s) succeeded", dir)
		}
	}
	s.checkContained(t)
}

func TestApplyCancelled(t *testing.T) {
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, s.root, bytes.NewReader(tarOf(t, reg("f", "x"))), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	wantAbsent(t, s.root, "f")
}

func TestApplyErrorKinds(t *testing.T) {
	// Every rejected entry is ErrInvalidArgument and names the entry.
	s := newSandbox(t)
	_, err := applyBytes(s.root, tarOf(t, reg("a/../../evil", "x")), Options{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"a/../../evil"`) {
		t.Fatalf("err %v", err)
	}
}
