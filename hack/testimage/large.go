package testimage

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// LargePackages are the Debian packages whose files under /usr/bin and
// /usr/lib make up the large image, in this order. They are all installed
// on the test machine and change only with an upgrade, so the selection (and
// so the digests) is stable while other packages come and go. When they do
// not add up to the requested size, sorted files of /usr/lib/x86_64-linux-gnu
// and /usr/bin fill the rest.
var LargePackages = []string{
	"libc6", "coreutils", "bash", "util-linux", "perl-base", "libstdc++6", "libssl3",
	"libperl5.36", "perl-modules-5.36", "python3.11-minimal", "libpython3.11-minimal",
	"libpython3.11-stdlib", "libbinutils", "binutils-x86-64-linux-gnu", "cpp-12", "gcc-12",
}

// maxLargeFile keeps single huge files out, so layers stay balanced.
const maxLargeFile = 16 << 20

// Large builds an image of about sizeMB MiB uncompressed over nLayers gzip
// layers: the busybox layer (so it runs, Cmd sh) and nLayers-1 layers of real
// binaries, libraries and modules copied from this machine's /usr/lib and
// /usr/bin, chosen deterministically (see LargePackages), sorted, with fixed
// mtimes and root ownership.
func Large(sizeMB, nLayers int) (*Built, error) {
	if nLayers < 2 || sizeMB < 1 {
		return nil, fmt.Errorf("large image needs >= 2 layers and >= 1 MB, got %d, %d", nLayers, sizeMB)
	}
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	budget := int64(sizeMB) << 20
	for _, e := range base.Entries {
		budget -= int64(len(e.Body))
	}
	paths, err := largeCandidates()
	if err != nil {
		return nil, err
	}
	perLayer := budget / int64(nLayers-1)
	layers := []Layer{base}
	var cur []string
	var curSize, total int64
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		l, err := fileLayer(cur)
		if err != nil {
			return err
		}
		layers = append(layers, l)
		cur, curSize = nil, 0
		return nil
	}
	for _, p := range paths {
		if total >= budget {
			break
		}
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		cur = append(cur, p)
		if st.Mode().IsRegular() {
			curSize += st.Size()
			total += st.Size()
		}
		if curSize >= perLayer && len(layers) < nLayers-1 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return Build(Image{Layers: layers, Config: BusyboxConfig(), Labels: map[string]string{"crid.test": "large"}})
}

// largeCandidates lists regular files and symlinks in selection order,
// without duplicates, each under /usr/bin, /usr/sbin or /usr/lib after
// resolving merged-/usr directory links.
func largeCandidates() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return
		}
		p = filepath.Join(dir, filepath.Base(p))
		if seen[p] || !(strings.HasPrefix(p, "/usr/bin/") || strings.HasPrefix(p, "/usr/sbin/") || strings.HasPrefix(p, "/usr/lib/")) {
			return
		}
		st, err := os.Lstat(p)
		if err != nil || !(st.Mode().IsRegular() || st.Mode()&fs.ModeSymlink != 0) || st.Size() > maxLargeFile {
			return
		}
		if st.Mode().IsRegular() { // skip what cannot be read
			f, err := os.Open(p)
			if err != nil {
				return
			}
			f.Close()
		}
		seen[p] = true
		out = append(out, p)
	}
	for _, pkg := range LargePackages {
		list, err := dpkgList(pkg)
		if err != nil {
			continue
		}
		slices.Sort(list)
		for _, p := range list {
			add(p)
		}
	}
	for _, root := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/bin"} {
		var files []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		slices.Sort(files)
		for _, p := range files {
			add(p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no files found for the large image")
	}
	return out, nil
}

func dpkgList(pkg string) ([]string, error) {
	f, err := os.Open("/var/lib/dpkg/info/" + pkg + ".list")
	if os.IsNotExist(err) {
		f, err = os.Open("/var/lib/dpkg/info/" + pkg + ":amd64.list")
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p := sc.Text(); strings.HasPrefix(p, "/") && p != "/" {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

// fileLayer copies paths (absolute) into a layer with their parent
// directories, sorted, owned by root, with fixed mtimes.
func fileLayer(paths []string) (Layer, error) {
	names := map[string]Entry{}
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			return Layer{}, err
		}
		name := strings.TrimPrefix(p, "/")
		for d := filepath.Dir(name); d != "." && d != "/"; d = filepath.Dir(d) {
			names[d] = Dir(d, 0o755)
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return Layer{}, err
			}
			names[name] = Symlink(name, target)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return Layer{}, err
			}
			names[name] = Entry{Name: name, Body: data, Mode: int64(st.Mode().Perm())}
		}
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	l := Layer{Compression: Gzip}
	for _, k := range keys {
		l.Entries = append(l.Entries, names[k])
	}
	return l, nil
}
