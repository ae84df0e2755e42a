package testimage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is the static busybox the test images are made of.
var BusyboxPath = "/usr/bin/busybox"

// busyboxApplets get a /bin symlink in the busybox layer.
var busyboxApplets = []string{"sh", "ls", "cat", "echo", "sleep", "id", "nc", "httpd", "env", "true", "false",
	"stty", "wc", "head", "mkdir", "ps", "top", "grep", "hostname", "touch", "rm", "ln", "stat", "dd", "test", "kill", "wget"}

// BusyboxLayer is a base layer: /bin/busybox, applet links, /etc/passwd
// with root, nobody and crid (1000), /etc/group, /tmp.
func BusyboxLayer() (Layer, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return Layer{}, fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	entries := []Entry{
		Dir("bin", 0o755), Dir("etc", 0o755), Dir("tmp", 0o1777), Dir("root", 0o700), Dir("home", 0o755),
		{Name: "home/crid", Type: '5', Mode: 0o755, UID: 1000, GID: 1000},
		{Name: "bin/busybox", Type: '0', Body: bin, Mode: 0o755},
		File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\ncrid:x:1000:1000:crid:/home/crid:/bin/sh\n", 0o644),
		File("etc/group", "root:x:0:\nnogroup:x:65534:\ncrid:x:1000:\nextra:x:2000:crid\n", 0o644),
	}
	for _, a := range busyboxApplets {
		entries = append(entries, Symlink("bin/"+a, "busybox"))
	}
	return Layer{Entries: entries}, nil
}

// BusyboxConfig is the config of the busybox image.
func BusyboxConfig() ocispec.ImageConfig {
	return ocispec.ImageConfig{Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"sh"}}
}

// Busybox builds the one-layer busybox image.
func Busybox() (*Built, error) {
	l, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	return Build(Image{Layers: []Layer{l}, Config: BusyboxConfig()})
}

// MultiLayer builds busybox plus layers with a whiteout, an opaque dir, a
// hard link pair, a symlink and an xattr, in gzip, zstd and plain tar.
func MultiLayer(docker bool) (*Built, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	l1 := Layer{Compression: Zstd, Entries: []Entry{
		Dir("data", 0o755), File("data/gone", "deleted above\n", 0o644), File("data/keep", "kept\n", 0o644),
		Dir("opq", 0o755), File("opq/hidden", "hidden by opaque\n", 0o644),
	}}
	l2 := Layer{Compression: None, Entries: []Entry{
		Dir("data", 0o755), Whiteout("data/gone"), Opaque("opq"), File("opq/visible", "visible\n", 0o644),
		File("data/orig", "linked\n", 0o640), Hardlink("data/link", "data/orig"), Symlink("data/sym", "keep"),
		{Name: "data/xattr", Type: '0', Body: []byte("x\n"), Mode: 0o644, Xattrs: map[string]string{"user.crid": "1"}},
	}}
	l3 := Layer{Compression: Gzip, Entries: []Entry{Dir("data", 0o755), File("data/top", "top layer\n", 0o600)}}
	comp := []Layer{base, l1, l2, l3}
	if docker { // Docker schema2 has no zstd media type.
		comp[1].Compression = Gzip
	}
	return Build(Image{Layers: comp, Config: BusyboxConfig(), Docker: docker})
}

// MultiArch builds an index of linux/amd64 and linux/arm64 busybox images
// told apart by the label "arch".
func MultiArch() (*BuiltIndex, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	var images []*Built
	for _, arch := range []string{"arm64", "amd64"} {
		b, err := Build(Image{Layers: []Layer{base}, Config: BusyboxConfig(), Labels: map[string]string{"arch": arch},
			Platform: ocispec.Platform{OS: "linux", Architecture: arch}})
		if err != nil {
			return nil, err
		}
		images = append(images, b)
	}
	return Index(images...)
}

// NonRoot builds busybox with USER set to user ("1000:1000", "crid").
func NonRoot(user string) (*Built, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	cfg := BusyboxConfig()
	cfg.User = user
	return Build(Image{Layers: []Layer{base}, Config: cfg})
}

// Large builds an image of about sizeMB uncompressed over nLayers layers
// from this machine's /usr/lib and /usr/bin files, chosen deterministically.
func Large(sizeMB, nLayers int) (*Built, error) {
	var files []string
	for _, root := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib"} {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
	}
	sort.Strings(files)
	seen := map[string]bool{}
	perLayer := int64(sizeMB) << 20 / int64(nLayers)
	layers := make([]Layer, 0, nLayers)
	cur, total := Layer{}, int64(0)
	for _, p := range files {
		if len(layers) == nLayers || seen[p] {
			break
		}
		seen[p] = true
		st, err := os.Stat(p)
		if err != nil || st.Size() > 32<<20 {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cur.Entries = append(cur.Entries, addParents(cur.Entries, p[1:])...)
		cur.Entries = append(cur.Entries, Entry{Name: p[1:], Type: '0', Body: data, Mode: int64(st.Mode().Perm())})
		total += int64(len(data))
		if total >= perLayer {
			layers = append(layers, cur)
			cur, total = Layer{}, 0
		}
	}
	if len(layers) < nLayers && len(cur.Entries) > 0 {
		layers = append(layers, cur)
	}
	return Build(Image{Layers: layers, Config: BusyboxConfig()})
}

func addParents(have []Entry, name string) []Entry {
	var out []Entry
	dir := filepath.Dir(name)
	var chain []string
	for dir != "." && dir != "/" {
		chain = append([]string{dir}, chain...)
		dir = filepath.Dir(dir)
	}
	for _, d := range chain {
		found := false
		for i := len(have) - 1; i >= 0 && !found; i-- {
			found = have[i].Name == d+"/" && have[i].Type == '5'
		}
		for _, o := range out {
			found = found || o.Name == d+"/"
		}
		if !found {
			out = append(out, Dir(d+"/", 0o755))
		}
	}
	return out
}
