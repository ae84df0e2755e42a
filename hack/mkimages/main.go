// Command mkimages builds crid's standard test images from local material
// (busybox-static, this machine's binaries) and pushes them to a registry.
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
	user := flag.String("user", "", "registry user")
	pass := flag.String("password", "", "registry password")
	large := flag.Bool("large", false, "also push crid-test/large (~100 MB, for benchmarks)")
	flag.Parse()
	if err := run(*reg, *user, *pass, *large); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(reg, user, pass string, large bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := &testimage.Pusher{Host: reg, User: user, Password: pass}
	type job struct {
		repo  string
		tags  []string
		build func() (*testimage.Built, error)
	}
	jobs := []job{
		{"crid-test/busybox", []string{"latest", "1.36"}, testimage.Busybox},
		{"crid-test/multilayer", []string{"latest"}, func() (*testimage.Built, error) { return testimage.MultiLayer(false) }},
		{"crid-test/multilayer", []string{"docker"}, func() (*testimage.Built, error) { return testimage.MultiLayer(true) }},
		{"crid-test/nonroot", []string{"latest"}, func() (*testimage.Built, error) { return testimage.NonRoot("1000:1000") }},
		{"crid-test/nonroot", []string{"named"}, func() (*testimage.Built, error) { return testimage.NonRoot("crid") }},
	}
	if large {
		jobs = append(jobs, job{"crid-test/large", []string{"latest"}, func() (*testimage.Built, error) { return testimage.Large(100, 5) }})
	}
	for _, j := range jobs {
		b, err := j.build()
		if err != nil {
			return fmt.Errorf("build %s: %w", j.repo, err)
		}
		if err := p.Push(ctx, j.repo, b, j.tags...); err != nil {
			return fmt.Errorf("push %s: %w", j.repo, err)
		}
		for _, t := range j.tags {
			fmt.Printf("%s/%s:%s %s\n", reg, j.repo, t, b.ManifestDigest)
		}
	}
	idx, err := testimage.MultiArch()
	if err != nil {
		return err
	}
	if err := p.PushIndex(ctx, "crid-test/multiarch", idx, "latest"); err != nil {
		return fmt.Errorf("push multiarch: %w", err)
	}
	fmt.Printf("%s/crid-test/multiarch:latest %s\n", reg, idx.Digest)
	return nil
}
