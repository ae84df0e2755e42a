// Command mkimages builds crid's standard test images from local material
// (busybox-static, this machine's Debian binaries) and pushes them to a
// registry over plain HTTP, printing one line per tag:
//
//	<registry>/<repo>:<tag> <manifest digest> <config digest (image ID)>
//
// Builds are reproducible, so a rerun prints the same digests and uploads
// nothing new.
//
//	go run ./hack/mkimages -registry 127.0.0.1:5000 [-user u -password p] [-large]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/crid-dev/crid/hack/testimage"
)

func main() {
	reg := flag.String("registry", "127.0.0.1:5000", "registry host:port (plain HTTP)")
	user := flag.String("user", "", "registry user (basic auth)")
	pass := flag.String("password", "", "registry password")
	large := flag.Bool("large", false, "also push crid-test/large (~100 MB over 5 layers, for benchmarks)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	critest := flag.Bool("critest", false, "also push busybox under the names cri-tools' critest pulls (serve them through a _default mirror)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p := &testimage.Pusher{Host: *reg, User: *user, Password: *pass}
	if err := run(ctx, p, *large, *critest); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

// job is one image (or index) pushed under tags.
type job struct {
	repo  string
	tags  []string
	image func() (*testimage.Built, error)
	index func() (*testimage.BuiltIndex, error)
}

// critestJobs are the images cri-tools' critest pulls, as repository paths
// on a registry that a crid _default hosts.toml mirror serves for every
// host (gcr.io/k8s-staging-cri-tools/x -> k8s-staging-cri-tools/x). All are
// busybox; user and label settings make them what each test expects.
func critestJobs() []job {
	const cri = "k8s-staging-cri-tools/"
	variant := func(user, label string) func() (*testimage.Built, error) {
		return func() (*testimage.Built, error) {
			base, err := testimage.BusyboxLayer()
			if err != nil {
				return nil, err
			}
			cfg := testimage.BusyboxConfig()
			cfg.User = user
			return testimage.Build(testimage.Image{Layers: []testimage.Layer{base}, Config: cfg, Labels: map[string]string{"critest": label}})
		}
	}
	// webServer stands in for nginx and httpd: a script named like the
	// server (so pidof and ps find it, and it writes nginx's pid file)
	// running busybox httpd on port, and saying so on stdout.
	webServer := func(name string, port int) func() (*testimage.Built, error) {
		return func() (*testimage.Built, error) {
			base, err := testimage.BusyboxLayer()
			if err != nil {
				return nil, err
			}
			script := fmt.Sprintf("#!/bin/sh\n"+
				"echo \"%[1]s (busybox httpd) serving /www on port %[2]d\"\n"+
				"mkdir -p /var/run && echo $$ >/var/run/nginx.pid\n"+
				"httpd -f -p %[2]d -h /www &\n"+
				"trap 'kill $!; exit 0' TERM INT\n"+
				"wait\n", name, port)
			web := testimage.Layer{Entries: []testimage.Entry{
				testimage.Dir("usr/sbin", 0o755),
				testimage.File("usr/sbin/"+name, script, 0o755),
				testimage.Dir("www", 0o755),
				testimage.File("www/index.html", "<h1>Welcome to "+name+"!</h1>\n", 0o644),
			}}
			cfg := testimage.BusyboxConfig()
			// The words real nginx shows in its command line; critest waits for them.
			cfg.Cmd = []string{"/usr/sbin/" + name, "master process"}
			return testimage.Build(testimage.Image{Layers: []testimage.Layer{base, web}, Config: cfg, Labels: map[string]string{"critest": name}})
		}
	}
	return []job{
		{repo: "e2e-test-images/busybox", tags: []string{"1.29-2"}, image: critestBusybox},
		{repo: "e2e-test-images/nginx", tags: []string{"1.14-2"}, image: webServer("nginx", 80)},
		{repo: "e2e-test-images/httpd", tags: []string{"2.4.39-4"}, image: webServer("httpd", 80)},
		{repo: cri + "hostnet-nginx-amd64", tags: []string{"latest"}, image: webServer("nginx", 12003)},
		{repo: "pause", tags: []string{"3.9", "3.10"}, image: variant("", "pause")},
		{repo: cri + "test-image-latest", tags: []string{"latest"}, image: variant("", "latest")},
		{repo: cri + "test-image-tag", tags: []string{"test", "all"}, image: variant("", "tag")},
		{repo: cri + "test-image-tags", tags: []string{"1", "2", "3"}, image: variant("", "tags")},
		{repo: cri + "test-image-1", tags: []string{"latest"}, image: variant("", "1")},
		{repo: cri + "test-image-2", tags: []string{"latest"}, image: variant("", "2")},
		{repo: cri + "test-image-3", tags: []string{"latest"}, image: variant("", "3")},
		{repo: cri + "test-image-user-uid", tags: []string{"latest"}, image: variant("1002", "uid")},
		{repo: cri + "test-image-user-username", tags: []string{"latest"}, image: variant("www-data", "username")},
		{repo: cri + "test-image-user-uid-group", tags: []string{"latest"}, image: variant("1003:users", "uid-group")},
		{repo: cri + "test-image-user-username-group", tags: []string{"latest"}, image: variant("www-data:www-data", "username-group")},
	}
}

func jobs(large, critest bool) []job {
	js := []job{
		{repo: "crid-test/busybox", tags: []string{"latest", "1.36"}, image: testimage.Busybox},
		{repo: "crid-test/multilayer", tags: []string{"latest"}, image: func() (*testimage.Built, error) { return testimage.MultiLayer(false) }},
		{repo: "crid-test/multilayer", tags: []string{"docker"}, image: func() (*testimage.Built, error) { return testimage.MultiLayer(true) }},
		{repo: "crid-test/multiarch", tags: []string{"latest"}, index: testimage.MultiArch},
		{repo: "crid-test/multiarch", tags: []string{"docker"}, index: testimage.MultiArchDocker},
		{repo: "crid-test/nonroot", tags: []string{"latest"}, image: func() (*testimage.Built, error) { return testimage.NonRoot("1000:1000") }},
		{repo: "crid-test/nonroot", tags: []string{"named"}, image: func() (*testimage.Built, error) { return testimage.NonRoot("crid") }},
		{repo: "crid-test/full", tags: []string{"latest"}, image: testimage.Full},
	}
	if critest {
		js = append(js, critestJobs()...)
	}
	if large {
		js = append(js, job{repo: "crid-test/large", tags: []string{"latest"}, image: func() (*testimage.Built, error) { return testimage.Large(100, 5) }})
	}
	return js
}

func run(ctx context.Context, p *testimage.Pusher, large, critest bool) error {
	start := time.Now()
	for _, j := range jobs(large, critest) {
		t0 := time.Now()
		var manifest, config, info string
		if j.index != nil {
			idx, err := j.index()
			if err != nil {
				return fmt.Errorf("build %s: %w", j.repo, err)
			}
			if err := p.PushIndex(ctx, j.repo, idx, j.tags...); err != nil {
				return fmt.Errorf("push %s: %w", j.repo, err)
			}
			manifest, config, info = idx.Digest.String(), "index", fmt.Sprintf("%d platforms", len(idx.Images))
		} else {
			b, err := j.image()
			if err != nil {
				return fmt.Errorf("build %s: %w", j.repo, err)
			}
			if err := p.Push(ctx, j.repo, b, j.tags...); err != nil {
				return fmt.Errorf("push %s: %w", j.repo, err)
			}
			manifest, config = b.ManifestDigest.String(), b.ConfigDigest.String()
			var size int64
			for _, l := range b.Layers {
				size += l.Size
			}
			info = fmt.Sprintf("%d layers, %.1f MB tar, %.1f MB compressed", len(b.Layers), float64(b.TarSize)/1e6, float64(size)/1e6)
		}
		for _, t := range j.tags {
			fmt.Printf("%s/%s:%s %s %s\n", p.Host, j.repo, t, manifest, config)
		}
		fmt.Fprintf(os.Stderr, "  %s:%v %s, built and pushed in %v\n", j.repo, j.tags, info, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Fprintf(os.Stderr, "done in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// critestBusybox is busybox with stand-ins for the procps and util-linux
// tools critest runs in its default image that Debian's busybox-static
// lacks: pgrep NAME (pids whose command name is NAME) and ipcs -m (the
// shared memory segments of the caller's IPC namespace, from /proc).
func critestBusybox() (*testimage.Built, error) {
	base, err := testimage.BusyboxLayer()
	if err != nil {
		return nil, err
	}
	const pgrep = "#!/bin/sh\n" +
		"found=1\n" +
		"for d in /proc/[0-9]*; do\n" +
		"  if [ \"$(cat \"$d/comm\" 2>/dev/null)\" = \"$1\" ]; then echo \"${d#/proc/}\"; found=0; fi\n" +
		"done\n" +
		"exit $found\n"
	const ipcs = "#!/bin/sh\n" +
		"echo '------ Shared Memory Segments --------'\n" +
		"echo 'key        shmid      owner      perms      bytes      nattch'\n" +
		"tail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch uid rest; do\n" +
		"  echo \"$key $shmid $uid $perms $size $nattch\"\n" +
		"done\n"
	tools := testimage.Layer{Entries: []testimage.Entry{
		testimage.Dir("usr/bin", 0o755),
		testimage.File("usr/bin/pgrep", pgrep, 0o755),
		testimage.File("usr/bin/ipcs", ipcs, 0o755),
	}}
	return testimage.Build(testimage.Image{Layers: []testimage.Layer{base, tools}, Config: testimage.BusyboxConfig(), Labels: map[string]string{"critest": "busybox"}})
}
