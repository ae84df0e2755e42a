// Package framework runs the real crid binary for end-to-end tests: a
// temporary root, state dir and socket per daemon, a CRI client over the
// socket, and cleanup of everything the daemon left, also when a test fails.
package framework

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Daemon is one running crid and its clients.
type Daemon struct {
	t        testing.TB
	Base     string // everything of this daemon lives below it
	Root     string
	State    string
	Socket   string
	Config   string // path of its config file
	LogPath  string
	Runtime  runtime.RuntimeServiceClient
	Image    runtime.ImageServiceClient
	cmd      *exec.Cmd
	waitErr  chan error
	conn     *grpc.ClientConn
	stopOnce sync.Once
}

// Options customise a daemon. ExtraConfig is appended to the generated TOML.
type Options struct {
	ExtraConfig string
	CNIConfDir  string   // default: an empty temporary dir
	CNIBinDirs  []string // searched before the system plugin dirs
}

// Start launches crid with a fresh base dir and waits until it serves. The
// daemon is stopped and its files removed when the test ends.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	RequireRoot(t)
	base, err := os.MkdirTemp("", "crid-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		t:       t,
		Base:    base,
		Root:    filepath.Join(base, "root"),
		State:   filepath.Join(base, "state"),
		Socket:  filepath.Join(base, "state", "crid.sock"),
		Config:  filepath.Join(base, "config.toml"),
		LogPath: filepath.Join(base, "crid.log"),
	}
	t.Cleanup(d.cleanup)
	cniDir := opts.CNIConfDir
	if cniDir == "" {
		cniDir = filepath.Join(base, "cni")
		if err := os.MkdirAll(cniDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	binDirs := append(append([]string{}, opts.CNIBinDirs...), "/usr/lib/cni", "/opt/cni/bin")
	cfg := fmt.Sprintf("listen = %q\nroot = %q\nstate = %q\nlog_level = \"debug\"\n[cni]\nconf_dir = %q\nbin_dirs = [%s]\n%s\n",
		d.Socket, d.Root, d.State, cniDir, quoteList(binDirs), opts.ExtraConfig)
	if err := os.WriteFile(d.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Launch()
	return d
}

// Launch starts the daemon process on the existing dirs and connects.
func (d *Daemon) Launch() {
	d.t.Helper()
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(Binary(d.t), "--config", d.Config)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		d.t.Fatalf("start crid: %v", err)
	}
	logf.Close()
	d.waitErr = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(d.cmd, d.waitErr)
	d.stopOnce = sync.Once{}
	if err := d.waitReady(30 * time.Second); err != nil {
		d.t.Fatalf("crid did not become ready: %v\n%s", err, d.LogTail(40))
	}
}

func (d *Daemon) waitReady(timeout time.Duration) error {
	conn, err := Dial(d.Socket)
	if err != nil {
		return err
	}
	d.conn = conn
	d.Runtime = runtime.NewRuntimeServiceClient(conn)
	d.Image = runtime.NewImageServiceClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Runtime.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-d.waitErr:
			d.waitErr <- werr
			return fmt.Errorf("crid exited: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after %s: %v", d.Socket, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Dial connects a CRI client to a socket path.
func Dial(socket string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Stop sends SIGTERM and waits for a clean exit, failing the test otherwise.
func (d *Daemon) Stop() {
	d.t.Helper()
	if err := d.signalAndWait(syscall.SIGTERM, 40*time.Second); err != nil {
		d.t.Fatalf("crid did not stop cleanly: %v\n%s", err, d.LogTail(40))
	}
}

// Kill sends SIGKILL, as a crash would, and reaps the process.
func (d *Daemon) Kill() {
	d.t.Helper()
	d.signalAndWait(syscall.SIGKILL, 10*time.Second)
}

// Restart stops the daemon (cleanly, or with SIGKILL when crash is set) and
// starts a new one on the same root and state.
func (d *Daemon) Restart(crash bool) {
	d.t.Helper()
	if crash {
		d.Kill()
	} else {
		d.Stop()
	}
	d.Launch()
}

func (d *Daemon) signalAndWait(sig syscall.Signal, timeout time.Duration) (err error) {
	d.stopOnce.Do(func() {
		if d.conn != nil {
			d.conn.Close()
		}
		if d.cmd == nil || d.cmd.Process == nil {
			return
		}
		d.cmd.Process.Signal(sig)
		select {
		case err = <-d.waitErr:
			if sig == syscall.SIGKILL {
				err = nil
			}
		case <-time.After(timeout):
			d.cmd.Process.Kill()
			<-d.waitErr
			err = fmt.Errorf("no exit %s after %s; killed", sig, timeout)
		}
	})
	return err
}

// LogTail returns the last n lines of the daemon's log.
func (d *Daemon) LogTail(n int) string {
	data, _ := os.ReadFile(d.LogPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanup stops the daemon, unmounts whatever it left below Base and removes
// Base, so a failed test leaves nothing behind.
func (d *Daemon) cleanup() {
	if err := d.signalAndWait(syscall.SIGTERM, 40*time.Second); err != nil {
		d.t.Logf("crid stop: %v", err)
	}
	if d.t.Failed() {
		d.t.Logf("crid log (tail):\n%s", d.LogTail(60))
	}
	UnmountUnder(d.Base)
	if err := os.RemoveAll(d.Base); err != nil {
		d.t.Errorf("remove %s: %v", d.Base, err)
	}
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		unix.Unmount(m, unix.MNT_DETACH)
	}
}

// RequireRoot fails the test when not run as root: end-to-end tests need
// real mounts, namespaces and runc.
func RequireRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Fatal("end-to-end tests must run as root (they mount, create namespaces and run runc)")
	}
}

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// Binary returns the crid binary under test: $CRID_BIN, or one built once
// from this checkout.
func Binary(t testing.TB) string {
	if p := os.Getenv("CRID_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crid-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "crid")
		out, err := exec.Command("go", "build", "-o", builtPath, "github.com/crid-dev/crid/cmd/crid").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtPath
}

// HybridCgroups tells whether the host mounts cgroup v1 controllers with a
// cgroup v2 hierarchy at /sys/fs/cgroup/unified (crun 1.8 refuses such hosts).
func HybridCgroups() bool {
	var st syscall.Statfs_t
	if syscall.Statfs("/sys/fs/cgroup/unified", &st) != nil {
		return false
	}
	return st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}
