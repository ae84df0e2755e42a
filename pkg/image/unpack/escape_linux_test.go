package unpack

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestApplyRejectsEscapes(t *testing.T) {
	whiteout := func(name string) entry { return reg(name, "") }
	tests := []struct {
		name    string
		entries func(s *sandbox) []entry
		wantMsg string
	}{
		{"dotdot file", func(*sandbox) []entry { return []entry{reg("../evil", "x")} }, "escapes"},
		{"dotdot after a component", func(*sandbox) []entry { return []entry{reg("a/../../evil", "x")} }, "escapes"},
		{"dotdot directory", func(*sandbox) []entry { return []entry{dirE("../outside/")} }, "escapes"},
		{"dotdot symlink name", func(*sandbox) []entry { return []entry{symlinkE("../outside/victim", "/etc/shadow")} }, "escapes"},
		{"absolute dotdot", func(*sandbox) []entry { return []entry{reg("/../outside/victim", "x")} }, "escapes"},
		{"write through symlink to /", func(s *sandbox) []entry {
			return []entry{symlinkE("l", "/"), reg("l"+s.outside+"/evil", "x")}
		}, "symbolic link"},
		{"write through symlink to ../..", func(s *sandbox) []entry {
			return []entry{symlinkE("l", "../.."), reg("l/"+filepath.Base(s.parent)+"/outside/evil", "x")}
		}, "symbolic link"},
		{"write through symlink to sibling", func(*sandbox) []entry {
			return []entry{symlinkE("l", "../outside"), reg("l/victim", "pwned")}
		}, "symbolic link"},
		{"deep write through symlink", func(*sandbox) []entry {
			return []entry{dirE("a/"), symlinkE("a/l", "../../outside"), dirE("a/l/sub/"), reg("a/l/sub/evil", "x")}
		}, `"a/l" is a symbolic link`},
		{"directory through symlink", func(*sandbox) []entry {
			return []entry{symlinkE("l", "../outside"), dirE("l/evil/")}
		}, "symbolic link"},
		{"symlink through symlink", func(*sandbox) []entry {
			return []entry{symlinkE("l", "../outside"), symlinkE("l/victim", "/")}
		}, "symbolic link"},
		{"hard link through symlink parent", func(*sandbox) []entry {
			return []entry{reg("f", "x"), symlinkE("l", "../outside"), hardlinkE("l/evil", "f")}
		}, "symbolic link"},
		{"whiteout through symlink", func(*sandbox) []entry {
			return []entry{symlinkE("l", "../outside"), whiteout("l/.wh.victim")}
		}, "symbolic link"},
		{"opaque through symlink", func(*sandbox) []entry {
			return []entry{symlinkE("l", "../outside"), whiteout("l/.wh..wh..opq")}
		}, "symbolic link"},
		{"dotdot whiteout", func(*sandbox) []entry { return []entry{whiteout("a/.wh...")} }, "invalid whiteout"},
		{"hard link escape", func(*sandbox) []entry { return []entry{hardlinkE("h", "../outside/victim")} }, "escapes"},
		{"hard link to /etc/passwd", func(*sandbox) []entry { return []entry{hardlinkE("h", "../../etc/passwd")} }, "escapes"},
		{"hard link to absolute path", func(*sandbox) []entry { return []entry{hardlinkE("h", "/etc/passwd")} }, "does not exist"},
		{"hard link via symlink", func(*sandbox) []entry {
			return []entry{symlinkE("l", "../outside"), hardlinkE("h", "l/victim")}
		}, "traverses symbolic link"},
		{"hard link via absolute symlink", func(s *sandbox) []entry {
			return []entry{symlinkE("l", s.outside), hardlinkE("h", "l/victim")}
		}, "traverses symbolic link"},
		{"hard link to missing target", func(*sandbox) []entry { return []entry{hardlinkE("h", "nope")} }, "does not exist"},
		{"hard link to directory", func(*sandbox) []entry { return []entry{dirE("d/"), hardlinkE("h", "d")} }, "is a directory"},
		{"hard link to root", func(*sandbox) []entry { return []entry{hardlinkE("h", "./")} }, "is a directory"},
		{"hard link to itself", func(*sandbox) []entry { return []entry{reg("f", ""), hardlinkE("f", "f")} }, "itself"},
		{"hard link target removed by the link", func(*sandbox) []entry {
			return []entry{reg("d/f", ""), hardlinkE("d", "d/f")}
		}, "removed"},
		{"root replaced by a file", func(*sandbox) []entry { return []entry{reg(".", "x")} }, "layer root"},
		{"file below a file", func(*sandbox) []entry { return []entry{reg("f", "x"), reg("f/g", "y")} }, "not a directory"},
		{"unsupported type", func(*sandbox) []entry {
			return []entry{{hdr: tar.Header{Typeflag: 'V', Name: "vol"}}}
		}, "unsupported entry type"},
		{"negative owner", func(*sandbox) []entry {
			return []entry{with(reg("f", ""), func(h *tar.Header) { h.Uid = -1 })}
		}, "invalid owner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := applyBytes(s.root, tarOf(t, tt.entries(s)...), testOpts())
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("err %v, want ErrInvalidArgument", err)
			} else if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %q does not mention %q", err, tt.wantMsg)
			}
			s.checkContained(t)
		})
	}
}

var errBoom = errors.New("boom")

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestApplyStreamErrors(t *testing.T) {
	// Whole-second times: no PAX headers, so the offsets below are known.
	whole := func(h *tar.Header) { h.ModTime = testTime.Truncate(time.Second) }
	valid := tarOf(t, with(reg("f", strings.Repeat("x", 3000)), whole), with(reg("g", "y"), whole))
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(valid)
	zw.Close()
	gzCorrupt := bytes.Clone(gz.Bytes())
	gzCorrupt[len(gzCorrupt)/2] ^= 0xff

	tests := []struct {
		name      string
		mediaType string // "" means r is fed to Apply as is
		r         io.Reader
		wantKind  error
	}{
		{"truncated in file content", "", bytes.NewReader(valid[:512+1000]), errdefs.ErrInvalidArgument},
		{"truncated in header", "", bytes.NewReader(valid[:512+3072+100]), errdefs.ErrInvalidArgument},
		{"garbage", "", bytes.NewReader(garbage), errdefs.ErrInvalidArgument},
		{"source error keeps its kind", "", &failingReader{data: valid[:2000], err: errBoom}, errBoom},
		{"truncated gzip", "application/vnd.oci.image.layer.v1.tar+gzip", bytes.NewReader(gz.Bytes()[:gz.Len()/2]), errdefs.ErrInvalidArgument},
		{"corrupt gzip", "application/vnd.oci.image.layer.v1.tar+gzip", bytes.NewReader(gzCorrupt), errdefs.ErrInvalidArgument},
		{"source error through gzip", "application/vnd.oci.image.layer.v1.tar+gzip", &failingReader{data: gz.Bytes()[:gz.Len()/2], err: errBoom}, errBoom},
		{"plain tar for gzip type", "application/vnd.oci.image.layer.v1.tar+gzip", bytes.NewReader(valid), errdefs.ErrInvalidArgument},
		{"gzip for zstd type", "application/vnd.oci.image.layer.v1.tar+zstd", bytes.NewReader(gz.Bytes()), errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			r := tt.r
			var err error
			if tt.mediaType != "" {
				var rc io.ReadCloser
				if rc, err = Decompress(r, tt.mediaType); err == nil {
					defer rc.Close()
					r = rc
				}
			}
			if err == nil {
				_, err = Apply(t.Context(), s.root, r, testOpts())
			}
			if !errors.Is(err, tt.wantKind) {
				t.Errorf("err %v, want %v", err, tt.wantKind)
			}
			if tt.wantKind == errBoom && errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("source error %v reported as invalid argument", err)
			}
			s.checkContained(t)
		})
	}
}

func TestApplyEmptyStream(t *testing.T) {
	s := newSandbox(t)
	res, err := applyBytes(s.root, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.DiffID.String() != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("diff ID %s", res.DiffID)
	}
	if names := dirNames(t, s.root); len(names) != 0 {
		t.Errorf("entries %v", names)
	}
}
