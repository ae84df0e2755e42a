// Package sandbox runs pod sandboxes: a pinned network namespace set up
// through CNI, a tiny infra process holding the pod's IPC/UTS (and PID)
// namespaces, the pod's /etc files and /dev/shm, and their durable records.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/keyed"
	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/store"
)

// Config is what a pod sandbox is made from (CRI's PodSandboxConfig,
// reduced to what this package acts on).
type Config struct {
	Name, Namespace, UID string
	Attempt              uint32
	Hostname             string
	DNS                  *netns.DNS // nil: the host's resolv.conf
	PortMappings         []netns.PortMapping
	Labels, Annotations  map[string]string
	HostNetwork          bool
	HostIPC              bool
	HostPID              bool // the pod shares the host's PID namespace
	PodPID               bool // containers share one PID namespace, the infra's
	Sysctls              map[string]string
	CgroupParent         string
	RuntimeHandler       string // resolved: never empty
	// Raw is the CRI config as JSON, kept in the record for status.
	Raw []byte
}

// Manager owns every pod sandbox.
type Manager struct {
	db        *store.DB
	network   *netns.Manager
	stateDir  string // <state>/sandboxes
	netnsDir  string // <state>/netns
	shmSize   int64
	driver    string // cgroup driver: cgroupfs or systemd
	infraPath string // the binary that runs `infra`
	log       *slog.Logger

	state string // crid's state dir; infra command lines carry it

	locks keyed.Mutex // per sandbox id

	mu         sync.Mutex
	infras     map[string]*watchedProc // live infra processes by sandbox id
	containers Containers
}

// Containers is what the sandbox manager needs from the container manager:
// StopPodSandbox and RemovePodSandbox act on a pod's containers first.
type Containers interface {
	// StopAll stops every container of the sandbox (kill after grace).
	StopAll(ctx context.Context, sandboxID string) error
	// RemoveAll force-removes every container of the sandbox.
	RemoveAll(ctx context.Context, sandboxID string) error
}

// SetContainers connects the container manager; until then a sandbox has
// no containers to stop or remove.
func (m *Manager) SetContainers(c Containers) {
	m.mu.Lock()
	m.containers = c
	m.mu.Unlock()
}

// Options configure a Manager.
type Options struct {
	State        string // crid's state dir
	ShmSize      int64
	CgroupDriver string
	InfraPath    string // default /proc/self/exe
	Log          *slog.Logger
}

// NewManager returns a Manager; call Recover before serving.
func NewManager(db *store.DB, network *netns.Manager, o Options) *Manager {
	if o.InfraPath == "" {
		o.InfraPath = "/proc/self/exe"
	}
	return &Manager{
		db: db, network: network, shmSize: o.ShmSize, driver: o.CgroupDriver, infraPath: o.InfraPath, log: o.Log,
		stateDir: filepath.Join(o.State, "sandboxes"), netnsDir: filepath.Join(o.State, "netns"),
		state: o.State, infras: map[string]*watchedProc{},
	}
}

func (m *Manager) lock(id string) func() { return m.locks.Lock(id) }

func (m *Manager) dir(id string) string { return filepath.Join(m.stateDir, id) }

// Dir is the sandbox's directory: hostname, hosts and resolv.conf files
// for containers to mount, shm (the pod's /dev/shm tmpfs unless host IPC)
// and ns/ipc, ns/uts (pins of the infra's namespaces, where it has its
// own). The PID namespace (PID mode POD) has no pin: nothing can enter a
// PID namespace whose init is gone, so containers join it through
// /proc/<infra pid>/ns/pid while the sandbox is ready.
func (m *Manager) Dir(id string) string { return m.dir(id) }

// NewID returns a new random 64-hex-digit id, as CRI ids look.
func NewID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// Resolve finds a sandbox by full ID or unique ID prefix.
func (m *Manager) Resolve(idOrPrefix string) (*store.Sandbox, error) {
	if idOrPrefix == "" {
		return nil, fmt.Errorf("empty sandbox id: %w", errdefs.ErrInvalidArgument)
	}
	var found *store.Sandbox
	err := m.db.View(func(tx *store.Tx) error {
		if sb, err := tx.Sandbox(idOrPrefix); err == nil {
			found = sb
			return nil
		}
		all, err := tx.Sandboxes()
		if err != nil {
			return err
		}
		for _, sb := range all {
			if strings.HasPrefix(sb.ID, idOrPrefix) {
				if found != nil {
					return fmt.Errorf("sandbox id prefix %q is ambiguous: %w", idOrPrefix, errdefs.ErrInvalidArgument)
				}
				found = sb
			}
		}
		if found == nil {
			return fmt.Errorf("pod sandbox %q: %w", idOrPrefix, errdefs.ErrNotFound)
		}
		return nil
	})
	return found, err
}

// List returns every sandbox record that is not being created, oldest first.
func (m *Manager) List() ([]*store.Sandbox, error) {
	var out []*store.Sandbox
	err := m.db.View(func(tx *store.Tx) error {
		all, err := tx.Sandboxes()
		for _, sb := range all {
			if sb.State != store.StateCreating {
				out = append(out, sb)
			}
		}
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

func (m *Manager) put(sb *store.Sandbox) error {
	if err := m.db.Update(func(tx *store.Tx) error { return tx.PutSandbox(sb) }); err != nil {
		return fmt.Errorf("record pod sandbox %s: %w", sb.ID, err)
	}
	return nil
}
