package testimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func readTar(t *testing.T, raw []byte) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	var hdrs []*tar.Header
	bodies := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, bodies
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		hdrs = append(hdrs, h)
		bodies[h.Name], _ = io.ReadAll(tr)
	}
}

func TestLayerEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry Entry
		check func(*tar.Header, []byte) bool
	}{
		{"file", Entry{Name: "a/f", Body: []byte("hi"), Mode: 0o640, UID: 7, GID: 8}, func(h *tar.Header, b []byte) bool {
			return h.Typeflag == tar.TypeReg && h.Mode == 0o640 && h.Uid == 7 && h.Gid == 8 && string(b) == "hi" && h.ModTime.Equal(Epoch)
		}},
		{"dir gets a slash", Dir("a/d", 0o1777), func(h *tar.Header, _ []byte) bool {
			return h.Typeflag == tar.TypeDir && h.Name == "a/d/" && h.Mode == 0o1777
		}},
		{"symlink", Symlink("a/s", "../t"), func(h *tar.Header, _ []byte) bool {
			return h.Typeflag == tar.TypeSymlink && h.Linkname == "../t"
		}},
		{"hardlink", Hardlink("a/h", "a/f"), func(h *tar.Header, _ []byte) bool {
			return h.Typeflag == tar.TypeLink && h.Linkname == "a/f"
		}},
		{"whiteout", Whiteout("a/gone"), func(h *tar.Header, _ []byte) bool { return h.Name == "a/.wh.gone" }},
		{"whiteout top level dir", Whiteout("gone/"), func(h *tar.Header, _ []byte) bool { return h.Name == ".wh.gone" }},
		{"opaque", Opaque("a/"), func(h *tar.Header, _ []byte) bool { return h.Name == "a/.wh..wh..opq" }},
		{"xattr", Entry{Name: "x", Xattrs: map[string]string{"user.crid": "1"}}, func(h *tar.Header, _ []byte) bool {
			return h.PAXRecords["SCHILY.xattr.user.crid"] == "1"
		}},
		{"char device", Entry{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, func(h *tar.Header, _ []byte) bool {
			return h.Typeflag == tar.TypeChar && h.Devmajor == 1 && h.Devminor == 3
		}},
		{"raw header escaping the root", Entry{Header: &tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Size: 4, Mode: 0o644}, Body: []byte("evil")},
			func(h *tar.Header, b []byte) bool { return h.Name == "../evil" && string(b) == "evil" }},
		{"raw absolute symlink", Entry{Header: &tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
			func(h *tar.Header, _ []byte) bool { return h.Linkname == "/etc" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := Layer{Entries: []Entry{tc.entry}}.Tar()
			if err != nil {
				t.Fatal(err)
			}
			hdrs, bodies := readTar(t, raw)
			if len(hdrs) != 1 || !tc.check(hdrs[0], bodies[hdrs[0].Name]) {
				t.Fatalf("got %+v", hdrs[0])
			}
		})
	}
}

func TestCompression(t *testing.T) {
	l := Layer{Entries: []Entry{File("f", strings.Repeat("crid ", 1000), 0o644)}}
	raw, err := l.Tar()
	if err != nil {
		t.Fatal(err)
	}
	decompress := map[string]func([]byte) ([]byte, error){
		Gzip: func(b []byte) ([]byte, error) {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
		Zstd: func(b []byte) ([]byte, error) {
			r, err := zstd.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			defer r.Close()
			return io.ReadAll(r)
		},
		None: func(b []byte) ([]byte, error) { return b, nil },
	}
	for _, tc := range []struct {
		comp   string
		docker bool
		want   string
	}{
		{"", false, ocispec.MediaTypeImageLayerGzip},
		{Gzip, true, MediaTypeDockerLayerGzip},
		{Zstd, false, ocispec.MediaTypeImageLayerZstd},
		{Zstd, true, ocispec.MediaTypeImageLayerZstd},
		{None, false, ocispec.MediaTypeImageLayer},
		{None, true, MediaTypeDockerLayer},
	} {
		l.Compression = tc.comp
		blob, mt, diffID, err := l.Blob(tc.docker)
		if err != nil {
			t.Fatal(err)
		}
		if mt != tc.want || diffID != digest.SHA256.FromBytes(raw) {
			t.Errorf("%q docker=%v: media type %s diffID %s", tc.comp, tc.docker, mt, diffID)
		}
		comp := tc.comp
		if comp == "" {
			comp = Gzip
		}
		got, err := decompress[comp](blob)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%q: round trip: %v", tc.comp, err)
		}
		again, _, _, _ := l.Blob(tc.docker)
		if !bytes.Equal(again, blob) {
			t.Errorf("%q: compression is not deterministic", tc.comp)
		}
	}
	if _, _, _, err := (Layer{Compression: "lz4"}).Blob(false); err == nil {
		t.Error("unknown compression accepted")
	}
}

func TestBuildLiesOnRequest(t *testing.T) {
	good, _, _, err := Layer{Entries: []Entry{File("f", "x", 0o644)}}.Blob(false)
	if err != nil {
		t.Fatal(err)
	}
	claimed := digest.SHA256.FromString("something else")
	b, err := Build(Image{Layers: []Layer{{RawBlob: good, Digest: claimed}, {RawBlob: []byte("not a tar"), MediaType: "application/x-junk"}}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Layers[0].Digest != claimed || !bytes.Equal(b.Blobs[claimed], good) {
		t.Fatalf("layer 0 = %+v", b.Layers[0])
	}
	if b.Layers[1].MediaType != "application/x-junk" || b.DiffIDs[1] != digest.SHA256.FromString("not a tar") {
		t.Fatalf("layer 1 = %+v diffID %s", b.Layers[1], b.DiffIDs[1])
	}
}

func TestBuildConfigAndManifest(t *testing.T) {
	b, err := Full()
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "1000:1000" || c.WorkingDir != "/work" || c.StopSignal != "SIGUSR1" || len(c.ExposedPorts) != 2 ||
		!slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c"}) || c.Labels["crid.test"] != "full" || !slices.Contains(c.Env, "CRID_TEST=1") {
		t.Errorf("config = %+v", c)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || len(cfg.RootFS.DiffIDs) != 1 || len(cfg.History) != 1 || !cfg.Created.Equal(Epoch) {
		t.Errorf("image = %+v", cfg)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest || m.Config.Digest != b.ConfigDigest || m.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("manifest = %s", b.Manifest)
	}
	d, err := MultiLayer(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != MediaTypeDockerManifest || m.Config.MediaType != MediaTypeDockerConfig || len(m.Layers) != 4 {
		t.Errorf("docker manifest = %s", d.Manifest)
	}
	for _, l := range m.Layers {
		if l.MediaType != MediaTypeDockerLayerGzip && l.MediaType != MediaTypeDockerLayer {
			t.Errorf("docker layer media type %s", l.MediaType)
		}
	}
}

func TestStandardImagesAreReproducible(t *testing.T) {
	builds := map[string]func() (digest.Digest, error){
		"busybox":    func() (digest.Digest, error) { b, err := Busybox(); return dig(b, err) },
		"multilayer": func() (digest.Digest, error) { b, err := MultiLayer(false); return dig(b, err) },
		"docker":     func() (digest.Digest, error) { b, err := MultiLayer(true); return dig(b, err) },
		"nonroot":    func() (digest.Digest, error) { b, err := NonRoot("crid"); return dig(b, err) },
		"large":      func() (digest.Digest, error) { b, err := Large(6, 3); return dig(b, err) },
		"multiarch": func() (digest.Digest, error) {
			idx, err := MultiArch()
			if err != nil {
				return "", err
			}
			return idx.Digest, nil
		},
	}
	for name, build := range builds {
		first, err := build()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		second, err := build()
		if err != nil || first != second {
			t.Errorf("%s: %s then %s (%v)", name, first, second, err)
		}
	}
}

func dig(b *Built, err error) (digest.Digest, error) {
	if err != nil {
		return "", err
	}
	return b.ManifestDigest, nil
}

func TestBusyboxApplets(t *testing.T) {
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		t.Skipf("busybox: %v", err)
	}
	have := strings.Fields(string(out))
	for _, a := range BusyboxApplets {
		if !slices.Contains(have, a) {
			t.Errorf("busybox has no applet %q", a)
		}
	}
	l, err := BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := l.Tar()
	hdrs, bodies := readTar(t, raw)
	byName := map[string]*tar.Header{}
	for _, h := range hdrs {
		byName[h.Name] = h
	}
	if h := byName["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/ = %+v", h)
	}
	if h := byName["bin/sh"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
		t.Errorf("bin/sh = %+v", h)
	}
	if !strings.Contains(string(bodies["etc/passwd"]), "crid:x:1000:1000:") || !strings.Contains(string(bodies["etc/passwd"]), "nobody:x:65534:") {
		t.Errorf("passwd = %s", bodies["etc/passwd"])
	}
}

func TestLargeSizeAndLayers(t *testing.T) {
	b, err := Large(12, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Layers) != 4 {
		t.Fatalf("%d layers", len(b.Layers))
	}
	if b.TarSize < 12<<20 || b.TarSize > 12<<20+2*maxLargeFile {
		t.Fatalf("tar size %d", b.TarSize)
	}
	t.Logf("large(12,4): %d tar bytes, layers %v", b.TarSize, b.Layers)
}

func TestWriteLayout(t *testing.T) {
	idx, err := MultiArch()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := idx.WriteLayout(dir, "latest"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top ocispec.Index
	json.Unmarshal(data, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != idx.Digest || top.Manifests[0].Annotations[ocispec.AnnotationRefName] != "latest" {
		t.Fatalf("index.json = %s", data)
	}
	n := 0
	filepath.WalkDir(filepath.Join(dir, "blobs", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		blob, _ := os.ReadFile(p)
		if got := digest.SHA256.FromBytes(blob).Encoded(); got != filepath.Base(p) {
			t.Errorf("blob %s has digest %s", p, got)
		}
		return nil
	})
	// index + 2 manifests + 2 configs + busybox layer + 2 arch layers
	if n != 8 {
		t.Errorf("%d blobs", n)
	}
}
