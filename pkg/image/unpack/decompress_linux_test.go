package unpack

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

func TestApplyDecompressedDiffID(t *testing.T) {
	layer := tarOf(t, dirE("d/"), reg("d/f", "hello"), symlinkE("d/l", "f"))
	// Builders pad the stream to a 10 KiB record; the diff ID covers it.
	layer = append(layer, make([]byte, 10240-len(layer)%10240)...)
	want := digest.NewDigestFromBytes(digest.SHA256, func() []byte { s := sha256.Sum256(layer); return s[:] }())

	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	zst := func(b []byte) []byte {
		w, _ := zstd.NewWriter(nil)
		defer w.Close()
		return w.EncodeAll(b, nil)
	}
	tests := []struct {
		mediaType string
		blob      []byte
	}{
		{"application/vnd.oci.image.layer.v1.tar", layer},
		{"application/vnd.oci.image.layer.v1.tar+gzip", gz(layer)},
		{"application/vnd.oci.image.layer.v1.tar+zstd", zst(layer)},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", gz(layer)},
		{"application/vnd.docker.image.rootfs.diff.tar", layer},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", gz(layer)},
	}
	for _, tt := range tests {
		t.Run(tt.mediaType, func(t *testing.T) {
			s := newSandbox(t)
			blob := bytes.NewReader(tt.blob)
			rc, err := Decompress(blob, tt.mediaType)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			res, err := Apply(t.Context(), s.root, rc, testOpts())
			if err != nil {
				t.Fatal(err)
			}
			if res.DiffID != want {
				t.Errorf("diff ID %s, want %s", res.DiffID, want)
			}
			if rest, _ := io.ReadAll(blob); len(rest) != 0 {
				t.Errorf("%d bytes of the blob left unread", len(rest))
			}
			wantContent(t, s.root, "d/f", "hello")
			s.checkContained(t)
		})
	}
}
