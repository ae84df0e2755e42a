package unpack

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchLayer is a ~64 MiB layer shaped like a distro or language runtime
// layer: many small files, some medium ones, a few large binaries, in
// directories of 50, with symlinks and hard links.
func benchLayer(b *testing.B) []byte {
	b.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	// Compressible content: random words from a small vocabulary.
	words := []string{"lib", "usr", "share", "python", "0x7f", "ELF", "\x00\x00\x00\x00", "func", "return", "locale", "\n"}
	var pool bytes.Buffer
	for pool.Len() < 9<<20 {
		pool.WriteString(words[rng.IntN(len(words))])
		pool.WriteByte(byte(rng.Uint32()))
	}
	content := pool.Bytes()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, body []byte) {
		h.Format = tar.FormatPAX
		h.ModTime = testTime
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		tw.Write(body)
	}
	sizes := []struct{ n, size int }{{6000, 1 << 10}, {2000, 4 << 10}, {200, 64 << 10}, {40, 256 << 10}, {3, 8 << 20}}
	i := 0
	for _, s := range sizes {
		for range s.n {
			dir := fmt.Sprintf("usr/lib/d%03d", i/50)
			if i%50 == 0 {
				write(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}, nil)
			}
			name := fmt.Sprintf("%s/file%05d", dir, i)
			off := rng.IntN(len(content) - s.size)
			write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, content[off:off+s.size])
			if i%40 == 0 {
				write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name + ".so", Linkname: filepath.Base(name), Mode: 0o777}, nil)
			}
			if i%100 == 0 {
				write(&tar.Header{Typeflag: tar.TypeLink, Name: name + ".hl", Linkname: name}, nil)
			}
			i++
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func benchApply(b *testing.B, layer []byte, blob []byte, mediaType string) {
	parent := b.TempDir()
	b.SetBytes(int64(len(layer)))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dir := filepath.Join(parent, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rc, err := Decompress(bytes.NewReader(blob), mediaType)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(b.Context(), dir, rc, testOpts()); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkApply measures unpacking throughput in uncompressed tar bytes
// per second (go test -bench Apply -benchtime 5x ./pkg/image/unpack/).
func BenchmarkApply(b *testing.B) {
	layer := benchLayer(b)
	b.Run("tar", func(b *testing.B) {
		benchApply(b, layer, layer, "application/vnd.oci.image.layer.v1.tar")
	})
	b.Run("gzip", func(b *testing.B) {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		w.Write(layer)
		w.Close()
		b.ReportMetric(float64(len(layer))/float64(buf.Len()), "ratio")
		benchApply(b, layer, buf.Bytes(), "application/vnd.oci.image.layer.v1.tar+gzip")
	})
	b.Run("zstd", func(b *testing.B) {
		w, _ := zstd.NewWriter(nil)
		blob := w.EncodeAll(layer, nil)
		w.Close()
		benchApply(b, layer, blob, "application/vnd.oci.image.layer.v1.tar+zstd")
	})
	b.Run("hash+untar only", func(b *testing.B) { // the floor: no filesystem work
		b.SetBytes(int64(len(layer)))
		for range b.N {
			tr := tar.NewReader(bytes.NewReader(layer))
			for {
				if _, err := tr.Next(); err != nil {
					break
				}
				io.Copy(io.Discard, tr)
			}
		}
	})
}
