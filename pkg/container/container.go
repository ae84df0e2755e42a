// Package container runs containers: each gets an overlay rootfs over its
// image's layer snapshots, an OCI spec from pkg/oci, and a shim (pkg/shim)
// that creates it through the pod's OCI runtime and outlives crid. The
// bbolt record is the source of truth; the shim's exit record tells exits
// that happened while crid was down.
package container

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	runc "github.com/containerd/go-runc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/keyed"
	"github.com/crid-dev/crid/pkg/oci"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/store"
)

// Runtime is one OCI runtime handler, resolved.
type Runtime struct {
	Path          string // absolute path of the runc-compatible binary
	Root          string // its --root (state) directory
	SystemdCgroup bool
}

// Options configure a Manager.
type Options struct {
	Root, State string             // crid's root and state dirs
	Exe         string             // crid's binary, run as `crid shim`; default os.Executable
	Runtimes    map[string]Runtime // by handler name
	Host        *oci.Host          // spec generation's view of the host
	Log         *slog.Logger
}

// Manager owns every container.
type Manager struct {
	db        *store.DB
	images    *image.Service
	sandboxes *sandbox.Manager
	o         Options
	log       *slog.Logger

	locks keyed.Mutex // per container id; never held while waiting for an exit

	mu      sync.Mutex
	names   map[string]string        // reserved name keys → container id, while creating
	exits   map[string]chan struct{} // closed when the container's exit is recorded
	watched map[string]bool          // containers with a live exit watcher

	subMu sync.Mutex
	subs  map[chan Event]bool // event subscribers
}

// NewManager returns a Manager; call Recover before serving.
func NewManager(db *store.DB, images *image.Service, sandboxes *sandbox.Manager, o Options) (*Manager, error) {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find crid's binary for shims: %w", err)
		}
		o.Exe = shimBinary(exe)
	}
	o.Log.Info("container shims", "binary", o.Exe)
	for _, d := range []string{filepath.Join(o.State, "containers"), filepath.Join(o.Root, "containers")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	m := &Manager{
		db: db, images: images, sandboxes: sandboxes, o: o, log: o.Log,
		names: map[string]string{}, exits: map[string]chan struct{}{}, watched: map[string]bool{},
	}
	sandboxes.SetContainers(m)
	return m, nil
}

// shimBinary is crid-shim next to crid's binary (a small program: its
// memory is paid once per container), else crid itself (`crid shim`).
func shimBinary(crid string) string {
	p := filepath.Join(filepath.Dir(crid), "crid-shim")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return crid
}

// Bundle is the container's OCI bundle dir (config.json, rootfs, shim
// socket and exit record); it lives in the state dir.
func (m *Manager) Bundle(id string) string { return filepath.Join(m.o.State, "containers", id) }

// layerDir holds the container's writable layer (upper, work): persistent.
func (m *Manager) layerDir(id string) string { return filepath.Join(m.o.Root, "containers", id) }

func (m *Manager) lock(id string) func() { return m.locks.Lock(id) }

// Get returns the record of container id (exact id).
func (m *Manager) Get(id string) (*store.Container, error) {
	var c *store.Container
	err := m.db.View(func(tx *store.Tx) (err error) { c, err = tx.Container(id); return err })
	return c, err
}

func (m *Manager) put(c *store.Container) error {
	if err := m.db.Update(func(tx *store.Tx) error { return tx.PutContainer(c) }); err != nil {
		return fmt.Errorf("record container %s: %w", c.ID, err)
	}
	return nil
}

// Resolve finds a container by id or unique id prefix. An exact id also
// finds a container still being created (whose lock its creator holds), so
// that stopping or removing it waits for the create to end.
func (m *Manager) Resolve(idOrPrefix string) (*store.Container, error) {
	if idOrPrefix == "" {
		return nil, fmt.Errorf("container id is required: %w", errdefs.ErrInvalidArgument)
	}
	if c, err := m.Get(idOrPrefix); err == nil {
		return c, nil
	}
	all, err := m.List()
	if err != nil {
		return nil, err
	}
	var found *store.Container
	for _, c := range all {
		if c.ID == idOrPrefix {
			return c, nil
		}
		if strings.HasPrefix(c.ID, idOrPrefix) {
			if found != nil {
				return nil, fmt.Errorf("container id prefix %q is ambiguous: %w", idOrPrefix, errdefs.ErrInvalidArgument)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("container %q: %w", idOrPrefix, errdefs.ErrNotFound)
	}
	return found, nil
}

// List returns every container record not being created, oldest first.
func (m *Manager) List() ([]*store.Container, error) {
	var out []*store.Container
	err := m.db.View(func(tx *store.Tx) error {
		all, err := tx.Containers()
		for _, c := range all {
			if c.State != store.StateCreating {
				out = append(out, c)
			}
		}
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// ofSandbox lists the containers of one sandbox, including ones being created.
func (m *Manager) ofSandbox(sandboxID string) ([]*store.Container, error) {
	var out []*store.Container
	err := m.db.View(func(tx *store.Tx) error {
		all, err := tx.Containers()
		for _, c := range all {
			if c.SandboxID == sandboxID {
				out = append(out, c)
			}
		}
		return err
	})
	return out, err
}

// Filter selects containers for ListContainers.
type Filter struct {
	ID, SandboxID string // id or id prefix
	State         *store.State
	Labels        map[string]string
}

// Apply returns the containers matching f.
func (f Filter) Apply(all []*store.Container) []*store.Container {
	var out []*store.Container
	for _, c := range all {
		if f.ID != "" && !strings.HasPrefix(c.ID, f.ID) {
			continue
		}
		if f.SandboxID != "" && !strings.HasPrefix(c.SandboxID, f.SandboxID) {
			continue
		}
		if f.State != nil && c.State != *f.State {
			continue
		}
		if !sandbox.MatchLabels(c.Labels, f.Labels) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// Config decodes the record's CRI ContainerConfig.
func Config(c *store.Container) (*runtime.ContainerConfig, error) {
	return decodeConfig(c.Config)
}

// exitChan returns the channel closed when id's exit is recorded.
func (m *Manager) exitChan(id string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.exits[id]
	if !ok {
		ch = make(chan struct{})
		m.exits[id] = ch
	}
	return ch
}

func (m *Manager) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.exits, id)
	delete(m.watched, id)
}

// runtimeClient drives a handler's runtime directly, for when no shim can.
func (m *Manager) runtimeClient(handler string) (*runc.Runc, error) {
	rt, err := m.runtimeFor(handler)
	if err != nil {
		return nil, err
	}
	return &runc.Runc{Command: rt.Path, Root: rt.Root, SystemdCgroup: rt.SystemdCgroup}, nil
}

// runtimeFor resolves a handler name.
func (m *Manager) runtimeFor(handler string) (Runtime, error) {
	rt, ok := m.o.Runtimes[handler]
	if !ok {
		return Runtime{}, fmt.Errorf("runtime handler %q is not configured: %w", handler, errdefs.ErrFailedPrecondition)
	}
	return rt, nil
}
