package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	vnetns "github.com/vishvananda/netns"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// nsGetNSType is NS_GET_NSTYPE (_IO(0xb7, 0x3)) from linux/nsfs.h; x/sys does
// not define it.
const nsGetNSType = 0xb703

// NetNS is a network namespace pinned by a bind mount on <pinDir>/<name>.
// It holds no file descriptor: the pin keeps the namespace alive, and the
// value can be recreated after a restart with Load or ListPins.
type NetNS struct {
	path string
}

// Option configures New.
type Option func(*options)

type options struct {
	loopbackUp bool
}

// WithLoopbackUp brings the namespace's "lo" interface up while it is
// created, on the creating thread (no extra thread switch). Without it lo
// stays down until something else raises it, usually the CNI "loopback"
// plugin; a network config that omits that plugin can use this instead and
// save one plugin exec per pod.
func WithLoopbackUp() Option {
	return func(o *options) { o.loopbackUp = true }
}

// New creates a network namespace and pins it on <pinDir>/<name>, creating
// pinDir if needed. The namespace is made on a dedicated OS thread that
// unshares, bind-mounts its /proc/<pid>/task/<tid>/ns/net onto the pin and
// then exits still locked, so the Go runtime discards that thread: no
// goroutine of the caller ever runs in the new namespace.
//
// The pin is a mount in crid's mount namespace; mount namespaces created
// afterwards with shared/slave propagation see copies of it.
//
// Errors: ErrInvalidArgument for a bad name, ErrAlreadyExists when the pin
// file exists.
func New(pinDir, name string, opts ...Option) (*NetNS, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := validateName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(pinDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create netns pin dir %s: %w", pinDir, err)
	}
	path := filepath.Join(pinDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("netns pin %s: %w", path, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("failed to create netns pin %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("failed to create netns pin %s: %w", path, err)
	}

	errc := make(chan error, 1)
	go func() {
		// Deliberately never unlocked: when this goroutine returns, the Go
		// runtime terminates the thread, which is now in another namespace.
		runtime.LockOSThread()
		errc <- pinNewNetNS(path, o)
	}()
	if err := <-errc; err != nil {
		if rerr := removePin(path); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("failed to create network namespace %s: %w", path, err)
	}
	return &NetNS{path: path}, nil
}

// pinNewNetNS runs on a locked thread that will be discarded.
func pinNewNetNS(path string, o options) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
	}
	if o.loopbackUp {
		if err := setLinkUp("lo"); err != nil {
			return err
		}
	}
	src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s on %s: %w", src, path, err)
	}
	return nil
}

// setLinkUp sets IFF_UP on an interface of the calling thread's namespace.
func setLinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("ifreq %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func validateName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid netns name %q: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Load returns the pinned namespace at path, typically one recorded before a
// restart. It fails with ErrNotFound when path does not exist or is not a
// mounted network namespace (a stale pin: Remove it via ListPins).
func Load(path string) (*NetNS, error) {
	if _, err := os.Lstat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("netns %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("failed to stat netns %s: %w", path, err)
	}
	if !IsPinned(path) {
		return nil, fmt.Errorf("%s is not a pinned network namespace: %w", path, errdefs.ErrNotFound)
	}
	return &NetNS{path: path}, nil
}

// ListPins returns every regular file in pinDir, pinned or stale (an
// unmounted file left by a crash during New), so that restart reconciliation
// can Remove those no sandbox owns. A missing pinDir yields nothing.
func ListPins(pinDir string) ([]*NetNS, error) {
	entries, err := os.ReadDir(pinDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to list netns pins in %s: %w", pinDir, err)
	}
	var pins []*NetNS
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		pins = append(pins, &NetNS{path: filepath.Join(pinDir, e.Name())})
	}
	return pins, nil
}

// IsPinned reports whether path is a live network namespace file: on nsfs
// (statfs NSFS_MAGIC, true for a pin's bind mount) and of type CLONE_NEWNET.
func IsPinned(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		return false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	typ, err := unix.IoctlRetInt(fd, nsGetNSType)
	return err == nil && typ == unix.CLONE_NEWNET
}

// Path returns the pin path, the value for CNI_NETNS and the OCI spec.
func (n *NetNS) Path() string { return n.path }

// Name returns the pin's file name (the name given to New).
func (n *NetNS) Name() string { return filepath.Base(n.path) }

// Do runs fn on an OS thread switched into the namespace, and waits for it.
// fn runs in its own goroutine, locked to that thread; goroutines fn starts
// do not inherit the namespace. Afterwards the thread is switched back, or,
// if that fails, discarded. A panic in fn is re-raised in the caller.
// ErrNotFound when the pin does not exist.
func (n *NetNS) Do(fn func() error) error {
	target, err := vnetns.GetFromPath(n.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("netns %s: %w", n.path, errdefs.ErrNotFound)
		}
		return fmt.Errorf("failed to open netns %s: %w", n.path, err)
	}
	defer target.Close()

	type outcome struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- outcome{err: fmt.Errorf("failed to open current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- outcome{err: fmt.Errorf("failed to enter netns %s: %w", n.path, err)}
			return
		}
		var out outcome
		func() {
			defer func() {
				if r := recover(); r != nil {
					out.panicked, out.value = true, r
				}
			}()
			out.err = fn()
		}()
		if err := vnetns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else: stay locked so the runtime discards the thread.
		done <- out
	}()
	out := <-done
	if out.panicked {
		panic(out.value)
	}
	return out.err
}

// Remove unmounts the pin (lazily, MNT_DETACH) and deletes the file. The
// namespace itself disappears once no process or open descriptor uses it.
// Removing an already removed or stale pin succeeds.
func (n *NetNS) Remove() error {
	return removePin(n.path)
}

func removePin(path string) error {
	// Loop in case the pin was mounted more than once.
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not a mount point (any more), or gone
		}
		return fmt.Errorf("failed to unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to remove netns pin %s: %w", path, err)
	}
	return nil
}

// isNetNS reports whether path is a live network namespace; used to decide
// whether to hand a path to CNI DEL.
func isNetNS(path string) bool {
	return path != "" && IsPinned(path)
}
