package testimage

import (
	"fmt"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is the static busybox (Debian busybox-static) the test
// images are made of.
var BusyboxPath = "/usr/bin/busybox"

// BusyboxApplets get a /bin/<applet> hard link to /bin/busybox in the
// busybox layer, as in the official busybox image (masking /bin/ls must
// not mask busybox itself).
var BusyboxApplets = []string{
	"basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname", "echo", "env", "false",
	"find", "grep", "head", "hostname", "id", "ip", "kill", "ln", "ls", "md5sum", "mkdir", "mount", "mv",
	"nc", "nslookup", "pidof", "ping", "printf", "ps", "pwd", "readlink", "rm", "sed", "seq", "sh",
	"sha256sum", "sleep", "sort", "stat", "stty", "tail", "tee", "test", "timeout", "top", "touch", "tr",
	"true", "uname", "uniq", "wc", "wget", "whoami", "xargs", "yes", "httpd", "awk", "brctl", "ifconfig",
	"mkfifo", "netstat", "nproc", "route", "setsid", "sysctl", "usleep", "vi",
}

// Users of the busybox image: root, nobody (65534) and crid (1000:1000,
// also in group extra, 2000).
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
		"crid:x:1000:1000:crid:/home/crid:/bin/sh\n"
	group = "root:x:0:\nnogroup:x:65534:\ncrid:x:1000:\nextra:x:2000:crid\n"
)

// BusyboxLayer is a base layer: /bin/busybox with applet links,
// /etc/passwd and /etc/group, /home/crid, /tmp (1777) and the usual empty
// directories.
func BusyboxLayer() (Layer, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return Layer{}, fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	entries := []Entry{Dir("bin", 0o755), {Name: "bin/busybox", Body: bin, Mode: 0o755}}
	for _, a := range BusyboxApplets {
		entries = append(entries, Hardlink("bin/"+a, "bin/busybox"))
	}
	entries = append(entries,
		Dir("dev", 0o755),
		Dir("etc", 0o755),
		File("etc/group", group, 0o644),
		File("etc/hostname", "busybox\n", 0o644),
		File("etc/passwd", passwd, 0o644),
		Dir("home", 0o755),
		Entry{Name: "home/crid", Type: '5', Mode: 0o755, UID: 1000, GID: 1000},
		Dir("proc", 0o555),
		Dir("root", 0o700),
		Dir("sys", 0o555),
		Dir("tmp", 0o1777),
		Dir("usr", 0o755),
		Dir("usr/bin", 0o755),
		Dir("usr/sbin", 0o755),
		Dir("var", 0o755),
		Dir("var/tmp", 0o1777),
	)
	return Layer{Entries: entries}, nil
}

// BusyboxConfig is the config of the busybox image: no entrypoint, Cmd sh.
func BusyboxConfig() ocispec.ImageConfig {
	return ocispec.ImageConfig{Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"sh"}}
}

// Busybox builds the one-layer busybox image (crid-test/busybox).
func Busybox() (*Built, error) {
	l, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	return Build(Image{Layers: []Layer{l}, Config: BusyboxConfig()})
}

// MultiLayer builds busybox plus three layers (zstd, plain tar, gzip; the
// zstd one is gzip in the Docker schema2 variant):
//
//	layer 1: data/{gone,keep}, data/dir-gone/f, opq/hidden, opq/sub/deep
//	layer 2: whiteouts of data/gone and data/dir-gone, opq opaque with
//	         opq/visible, hard links data/orig (0640) + data/link, symlink
//	         data/sym -> keep, data/xattr (user.crid=1), data/owned (1000:1000)
//	layer 3: data/top (0600)
//
// So through the stack: data/keep = "kept\n", data/sym reads it,
// data/gone, data/dir-gone, opq/hidden, opq/sub are gone.
func MultiLayer(docker bool) (*Built, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	l1 := Layer{Compression: Zstd, Entries: []Entry{
		Dir("data", 0o755),
		Dir("data/dir-gone", 0o755),
		File("data/dir-gone/f", "deleted above with its dir\n", 0o644),
		File("data/gone", "deleted above\n", 0o644),
		File("data/keep", "kept\n", 0o644),
		Dir("opq", 0o755),
		File("opq/hidden", "hidden by opaque\n", 0o644),
		Dir("opq/sub", 0o755),
		File("opq/sub/deep", "hidden by opaque\n", 0o644),
	}}
	l2 := Layer{Compression: None, Entries: []Entry{
		Dir("data", 0o755),
		Whiteout("data/dir-gone"),
		Whiteout("data/gone"),
		File("data/orig", "linked\n", 0o640),
		Hardlink("data/link", "data/orig"),
		{Name: "data/owned", Body: []byte("mine\n"), Mode: 0o600, UID: 1000, GID: 1000},
		Symlink("data/sym", "keep"),
		{Name: "data/xattr", Body: []byte("x\n"), Mode: 0o644, Xattrs: map[string]string{"user.crid": "1"}},
		Dir("opq", 0o755),
		Opaque("opq"),
		File("opq/visible", "visible\n", 0o644),
	}}
	l3 := Layer{Compression: Gzip, Entries: []Entry{Dir("data", 0o755), File("data/top", "top layer\n", 0o600)}}
	if docker { // Docker schema2 has no zstd media type of its own.
		l1.Compression = Gzip
	}
	return Build(Image{Layers: []Layer{base, l1, l2, l3}, Config: BusyboxConfig(), Docker: docker})
}

// MultiArch builds an OCI index of linux/arm64 (listed first) and
// linux/amd64 busybox images, told apart by the label "arch" and the file
// /etc/crid-arch. Both hold the amd64 busybox: only the metadata differs.
func MultiArch() (*BuiltIndex, error) {
	images, err := multiArchImages(false)
	if err != nil {
		return nil, err
	}
	return Index(images...)
}

// MultiArchDocker is MultiArch as a Docker schema2 manifest list.
func MultiArchDocker() (*BuiltIndex, error) {
	images, err := multiArchImages(true)
	if err != nil {
		return nil, err
	}
	return ManifestList(images...)
}

func multiArchImages(docker bool) ([]*Built, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	var images []*Built
	for _, p := range []ocispec.Platform{
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "amd64"},
	} {
		tag := Layer{Entries: []Entry{Dir("etc", 0o755), File("etc/crid-arch", p.Architecture+"\n", 0o644)}}
		b, err := Build(Image{
			Layers: []Layer{base, tag}, Config: BusyboxConfig(), Platform: p, Docker: docker,
			Labels: map[string]string{"arch": p.Architecture},
		})
		if err != nil {
			return nil, err
		}
		images = append(images, b)
	}
	return images, nil
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

// Full builds busybox with every config field crid maps set: Entrypoint,
// Cmd, Env, WorkingDir (/work, absent from the layers), User, Labels,
// ExposedPorts, Volumes and StopSignal.
func Full() (*Built, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	cfg := ocispec.ImageConfig{
		User:         "1000:1000",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
		Env:          []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CRID_TEST=1", "HOME=/home/crid"},
		Entrypoint:   []string{"/bin/sh", "-c"},
		Cmd:          []string{"echo hello; sleep 3600"},
		Volumes:      map[string]struct{}{"/data": {}},
		WorkingDir:   "/work",
		Labels:       map[string]string{"org.opencontainers.image.title": "crid-test/full", "crid.test": "full"},
		StopSignal:   "SIGUSR1",
	}
	return Build(Image{Layers: []Layer{base}, Config: cfg})
}
