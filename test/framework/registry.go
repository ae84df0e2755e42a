package framework

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/crid-dev/crid/hack/testimage"
)

// Registry is a docker-registry started by hack/registry.sh on 127.0.0.1.
type Registry struct {
	Host   string // 127.0.0.1:port
	Dir    string
	Pusher *testimage.Pusher
}

// StartRegistry starts a registry (with basic auth when user is set) and
// stops it and removes its storage when the test ends.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	dir, err := os.MkdirTemp("", "crid-registry-")
	if err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	args := []string{"start", dir, fmt.Sprint(port)}
	if user != "" {
		out, err := exec.Command("htpasswd", "-Bbn", user, password).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		hp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(hp, out, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, hp)
	}
	script := filepath.Join(RepoRoot(), "hack", "registry.sh")
	t.Cleanup(func() {
		exec.Command(script, "stop", dir).Run()
		os.RemoveAll(dir)
	})
	if out, err := exec.Command(script, args...).CombinedOutput(); err != nil {
		t.Fatalf("start registry: %v\n%s", err, out)
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	return &Registry{Host: host, Dir: dir, Pusher: &testimage.Pusher{Host: host, User: user, Password: password}}
}

// Push uploads b to repo under tags, failing the test on error.
func (r *Registry) Push(t testing.TB, repo string, b *testimage.Built, tags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Pusher.Push(ctx, repo, b, tags...); err != nil {
		t.Fatal(err)
	}
}

// PushIndex uploads idx to repo under tags.
func (r *Registry) PushIndex(t testing.TB, repo string, idx *testimage.BuiltIndex, tags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Pusher.PushIndex(ctx, repo, idx, tags...); err != nil {
		t.Fatal(err)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot is the checkout this package is in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}
