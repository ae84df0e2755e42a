package unpack

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzApply feeds Apply either raw bytes (mode even) or a tar built by
// fuzzTar from the bytes (mode odd), and checks that nothing outside the
// layer directory is ever created or changed, and that a successful Apply
// reports the right diff ID. Each run creates files, so fuzz on tmpfs:
//
//	TMPDIR=/dev/shm go test -run '^$' -fuzz FuzzApply -fuzztime 60s -fuzzminimizetime 5s ./pkg/image/unpack/
func FuzzApply(f *testing.F) {
	seeds := [][]entry{
		{dirE("d/"), reg("d/f", "x"), symlinkE("d/l", "f"), hardlinkE("h", "d/f"), reg(".wh.gone", ""), reg("d/.wh..wh..opq", "")},
		{reg("../evil", "x")},
		{symlinkE("l", "../outside"), reg("l/victim", "pwned")},
		{symlinkE("l", "../.."), reg("l/outside/evil", "x")},
		{hardlinkE("h", "../outside/victim")},
		{symlinkE("l", "../outside"), hardlinkE("h", "l/victim")},
		{symlinkE("l", "../outside/victim"), reg("l", "new")},
	}
	for _, s := range seeds {
		f.Add(uint8(0), tarOf(f, s...))
	}
	f.Add(uint8(0), []byte("garbage"))
	// Programs for fuzzTar: entry = op, name, mode, then per op a size or a
	// link target (0, index into targets) or (1, name).
	for _, p := range [][]byte{
		{2, 0, 2, 0, 0, 3, 0, 1, 2, 0, 0, 5},          // l -> ../outside; l/a
		{2, 0, 2, 0, 0, 6, 1, 2, 2, 10, 0, 0},         // l -> <parent>; l/outside/a/
		{3, 0, 0, 0, 0, 4},                            // a => ../outside/victim
		{2, 0, 2, 0, 0, 7, 0, 0, 2, 0, 3},             // l -> <victim>; l
		{2, 0, 2, 0, 0, 3, 0, 1, 2, 6, 0, 0},          // l -> ../outside; l/.wh.a
		{2, 0, 2, 0, 0, 3, 7, 0, 2, 0},                // l -> ../outside; l/.wh..wh..opq
		{2, 0, 2, 0, 0, 3, 3, 0, 0, 0, 1, 1, 2, 11},   // l -> ../outside; a => l/victim
		{1, 0, 0, 1, 0, 1, 0, 2, 0, 0, 9, 4, 0, 0, 1}, // a/ ; a/a ; char a
	} {
		f.Add(uint8(1), p)
	}
	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		s := newSandbox(t)
		stream := data
		if mode%2 == 1 {
			stream = fuzzTar(s, data)
		}
		res, err := applyBytes(s.root, stream, testOpts())
		if err == nil {
			if want := digest.FromBytes(stream); res.DiffID != want {
				t.Errorf("diff ID %s, want %s", res.DiffID, want)
			}
		}
		s.checkContained(t)
	})
}

// fuzzTar interprets data as a list of entries, with names and link targets
// drawn from small alphabets rich in "..", symlinks and whiteouts. Absolute
// symlinks point into the sandbox, never at the host's "/".
func fuzzTar(s *sandbox, data []byte) []byte {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	comps := []string{"a", "b", "l", "..", ".", "", ".wh.a", ".wh..wh..opq", ".wh..wh.x", ".wh.l", "outside", "victim", ".wh..."}
	name := func() string {
		b := next()
		n := int(b%4) + 1
		parts := make([]string, n)
		for i := range parts {
			parts[i] = comps[int(next())%len(comps)]
		}
		p := strings.Join(parts, "/")
		if b&0x10 != 0 {
			p = "/" + p
		}
		if b&0x20 != 0 {
			p += "/"
		}
		return p
	}
	targets := []string{"a", "..", "../..", "../outside", "../outside/victim", s.outside, s.parent, s.victim, "l/a", "b/../..", "/"}
	modes := []int64{0o644, 0o4755, 0, 0o777, 0o1777, 0o2750}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for len(data) > 0 {
		op := next()
		h := tar.Header{Name: name(), Mode: modes[int(next())%len(modes)], ModTime: testTime, Format: tar.FormatPAX}
		var body []byte
		switch op % 8 {
		case 0:
			h.Typeflag = tar.TypeReg
			body = bytes.Repeat([]byte{op}, int(next()%64))
		case 1:
			h.Typeflag = tar.TypeDir
		case 2:
			h.Typeflag = tar.TypeSymlink
			if next()%2 == 0 {
				h.Linkname = targets[int(next())%len(targets)]
			} else {
				h.Linkname = name()
			}
			if h.Linkname == "/" { // keep a buggy applier away from the host
				h.Linkname = s.parent
			}
		case 3:
			h.Typeflag = tar.TypeLink
			if next()%2 == 0 {
				h.Linkname = targets[int(next())%len(targets)]
			} else {
				h.Linkname = name()
			}
		case 4:
			h.Typeflag = tar.TypeChar
			h.Devmajor, h.Devminor = 1, 3
		case 5:
			h.Typeflag = tar.TypeFifo
		case 6:
			h.Typeflag = tar.TypeReg
			h.PAXRecords = map[string]string{paxXattrPrefix + "user.x": "v", paxXattrPrefix + "trusted.overlay.opaque": "y"}
		case 7:
			h.Typeflag = tar.TypeReg
			h.Name = strings.TrimSuffix(h.Name, "/") + "/.wh..wh..opq"
		}
		h.Size = int64(len(body))
		if tw.WriteHeader(&h) != nil {
			continue
		}
		tw.Write(body)
	}
	tw.Close()
	out := buf.Bytes()
	if cut := int(len(out) * 7 / 8); len(out) > 2048 && out[len(out)/2]%5 == 0 {
		out = out[:cut-13] // sometimes truncated
	}
	return out
}
