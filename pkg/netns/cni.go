package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// NetworkNotReadyReason is the CRI NetworkReady condition reason when no
// usable CNI config is loaded.
const NetworkNotReadyReason = "NetworkPluginNotReady"

const (
	defaultPollInterval = time.Second
	// cleanupTimeout bounds the DEL that undoes a failed ADD.
	cleanupTimeout = 30 * time.Second
)

// Manager runs CNI operations against the first network config in a
// directory, reloading it when the directory changes (Start). Config
// reloads swap an immutable snapshot, so they never wait for in-flight
// ADD/DEL calls, and calls never wait for a reload.
type Manager struct {
	confDir      string
	binDirs      []string
	cni          *libcni.CNIConfig
	pollInterval time.Duration
	log          *slog.Logger

	net       atomic.Pointer[loadedNetwork]
	reloadMu  sync.Mutex // serializes reloads
	startOnce sync.Once
}

// loadedNetwork is one immutable snapshot of the config dir.
type loadedNetwork struct {
	file        string                    // config file used; "" when none
	list        *libcni.NetworkConfigList // nil when not usable
	err         error                     // load error, nil when none
	fingerprint string
}

// ManagerOption configures NewManager.
type ManagerOption func(*Manager)

// WithPollInterval sets how often Start checks the config dir (default 1s).
func WithPollInterval(d time.Duration) ManagerOption {
	return func(m *Manager) {
		if d > 0 {
			m.pollInterval = d
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) ManagerOption {
	return func(m *Manager) {
		if l != nil {
			m.log = l
		}
	}
}

// NewManager loads the network config from confDir now; binDirs are searched
// for plugins; cacheDir holds libcni's per-attachment cache (results and the
// config used), which Teardown and GC rely on after a restart. Keep it where
// it survives as long as the allocations it describes (host-local IPAM keeps
// its leases in /var/lib/cni by default, across reboots).
func NewManager(confDir string, binDirs []string, cacheDir string, opts ...ManagerOption) (*Manager, error) {
	if confDir == "" || len(binDirs) == 0 || cacheDir == "" {
		return nil, fmt.Errorf("CNI manager needs a conf dir, plugin dirs and a cache dir: %w", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create CNI cache dir %s: %w", cacheDir, err)
	}
	m := &Manager{
		confDir: confDir,
		binDirs: append([]string(nil), binDirs...),
		// An explicit exec: with nil, libcni sets its default lazily on
		// every call, a data race between concurrent pods.
		cni: libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: version.PluginDecoder{},
		}),
		pollInterval: defaultPollInterval,
		log:          slog.Default(),
	}
	for _, o := range opts {
		o(m)
	}
	_ = m.Reload()
	return m, nil
}

// Start watches the config dir until ctx is done, polling it every poll
// interval (a readdir and a read of the first file: cheap, and unlike
// inotify it copes with the directory appearing later and with renames).
// It returns at once; calling it again has no effect.
func (m *Manager) Start(ctx context.Context) {
	m.startOnce.Do(func() {
		go func() {
			t := time.NewTicker(m.pollInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_ = m.Reload()
				}
			}
		}()
	})
}

// Reload re-reads the config dir now and returns the load error, if any.
// Not finding a config is not an error here (see Ready).
func (m *Manager) Reload() error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	next := loadNetwork(m.confDir)
	prev := m.net.Load()
	if prev != nil && prev.fingerprint == next.fingerprint {
		return next.err
	}
	m.net.Store(next)
	switch {
	case next.err != nil:
		m.log.Warn("CNI config unusable", "dir", m.confDir, "error", next.err)
	case next.list == nil:
		m.log.Warn("no CNI config", "dir", m.confDir)
	default:
		m.log.Info("loaded CNI config", "file", next.file, "network", next.list.Name,
			"cniVersion", next.list.CNIVersion, "plugins", len(next.list.Plugins))
	}
	return next.err
}

// loadNetwork picks the first config file (by name) with extension .conflist,
// .conf or .json, as libcni and containerd do. A broken first file is an
// error, not skipped: another network silently taking over is worse.
func loadNetwork(dir string) *loadedNetwork {
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		err = fmt.Errorf("failed to read CNI config dir %s: %w", dir, err)
		return &loadedNetwork{err: err, fingerprint: "err\x00" + err.Error()}
	}
	if len(files) == 0 {
		return &loadedNetwork{fingerprint: "none"}
	}
	sort.Strings(files)
	file := files[0]
	list, err := loadFile(file)
	if err != nil {
		err = fmt.Errorf("failed to load CNI config %s: %w", file, err)
		return &loadedNetwork{file: file, err: err, fingerprint: "err\x00" + err.Error()}
	}
	var fp bytes.Buffer
	fp.WriteString(file)
	fp.WriteByte(0)
	fp.Write(list.Bytes)
	for _, p := range list.Plugins {
		fp.WriteByte(0)
		fp.Write(p.Bytes)
	}
	return &loadedNetwork{file: file, list: list, fingerprint: fp.String()}
}

func loadFile(file string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	var list *libcni.NetworkConfigList
	if _, isList := probe["plugins"]; isList || filepath.Ext(file) == ".conflist" {
		list, err = libcni.NetworkConfFromFile(file)
	} else {
		var conf *libcni.PluginConfig
		conf, err = libcni.NetworkPluginConfFromBytes(data)
		if err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, err
	}
	if list.Name == "" {
		return nil, fmt.Errorf("network has no name")
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("network %q has no plugins", list.Name)
	}
	return list, nil
}

// Ready reports the CRI NetworkReady condition: a config is loaded and all
// its plugin binaries exist. reason is NetworkNotReadyReason when not ready.
func (m *Manager) Ready() (ready bool, reason, message string) {
	n := m.net.Load()
	switch {
	case n.err != nil:
		return false, NetworkNotReadyReason, "Network plugin returns error: " + n.err.Error()
	case n.list == nil:
		return false, NetworkNotReadyReason, "Network plugin returns error: no network config found in " + m.confDir
	}
	for _, p := range n.list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, m.binDirs); err != nil {
			return false, NetworkNotReadyReason, fmt.Sprintf("Network plugin returns error: network %q (%s): %v", n.list.Name, n.file, err)
		}
	}
	return true, "", ""
}

// NetworkName returns the loaded network's name, "" when none.
func (m *Manager) NetworkName() string {
	if l := m.net.Load().list; l != nil {
		return l.Name
	}
	return ""
}

// current returns the usable network or an ErrUnavailable error.
func (m *Manager) current() (*libcni.NetworkConfigList, error) {
	n := m.net.Load()
	if n.err != nil {
		return nil, fmt.Errorf("CNI network not ready: %v: %w", n.err, errdefs.ErrUnavailable)
	}
	if n.list == nil {
		return nil, fmt.Errorf("CNI network not ready: no network config found in %s: %w", m.confDir, errdefs.ErrUnavailable)
	}
	return n.list, nil
}

// Setup attaches the pod's namespace to the network (CNI ADD). If ADD fails
// it runs DEL itself, so no partial allocation is left behind; calling
// Teardown afterwards anyway is harmless.
func (m *Manager) Setup(ctx context.Context, pn PodNetwork) (*Result, error) {
	list, err := m.current()
	if err != nil {
		return nil, err
	}
	rt, err := runtimeConf(pn)
	if err != nil {
		return nil, err
	}
	if pn.NetNSPath == "" {
		return nil, fmt.Errorf("pod network %s without netns path: %w", pn.ID, errdefs.ErrInvalidArgument)
	}
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := m.del(delCtx, list, rt); derr != nil {
			m.log.Warn("CNI DEL after failed ADD failed", "sandbox", pn.ID, "network", list.Name, "error", derr)
		}
		return nil, fmt.Errorf("failed to set up network %q for sandbox %s: %w", list.Name, pn.ID, err)
	}
	out, err := newResult(list.Name, rt.IfName, res)
	if err != nil {
		return nil, fmt.Errorf("network %q for sandbox %s: %w", list.Name, pn.ID, err)
	}
	return out, nil
}

// Teardown detaches the pod from the network (CNI DEL). It uses the config
// cached at ADD time when there is one (so a changed or removed config dir
// does not block it), else the current config. The namespace path is passed
// only if it is still a live namespace; plugins then release what they hold
// outside it (IPAM leases, iptables rules). DEL is idempotent: tearing down
// twice, or a sandbox never set up, succeeds.
func (m *Manager) Teardown(ctx context.Context, pn PodNetwork) error {
	rt, err := runtimeConf(pn)
	if err != nil {
		return err
	}
	atts, err := m.cni.GetCachedAttachments(pn.ID)
	if err != nil {
		m.log.Warn("cannot read CNI cache", "sandbox", pn.ID, "error", err)
	}
	cur := m.net.Load().list
	var errs []error
	for _, att := range atts {
		list, err := libcni.NetworkConfFromBytes(att.Config)
		if err != nil || len(list.Plugins) == 0 {
			if cur == nil || cur.Name != att.Network {
				errs = append(errs, fmt.Errorf("cached CNI config of network %q unusable: %v", att.Network, err))
				continue
			}
			list = cur
		}
		art := &libcni.RuntimeConf{
			ContainerID:    att.ContainerID,
			NetNS:          liveNetNS(pn.NetNSPath, att.NetNS),
			IfName:         att.IfName,
			Args:           att.CniArgs,
			CapabilityArgs: att.CapabilityArgs,
		}
		if err := m.del(ctx, list, art); err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", list.Name, err))
		}
	}
	if len(atts) == 0 {
		// No cache: never set up, already torn down, or interrupted during
		// ADD. DEL with the current config covers the last case.
		if cur == nil {
			m.log.Debug("no CNI attachment and no config; nothing to tear down", "sandbox", pn.ID)
			return nil
		}
		rt.NetNS = liveNetNS(pn.NetNSPath)
		if err := m.del(ctx, cur, rt); err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", cur.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to tear down network of sandbox %s: %w", pn.ID, err)
	}
	return nil
}

// del runs DEL, treating "unknown container" (CNI error 3) as done.
func (m *Manager) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	err := m.cni.DelNetworkList(ctx, list, rt)
	var cerr *types.Error
	if errors.As(err, &cerr) && cerr.Code == types.ErrUnknownContainer {
		m.log.Debug("CNI DEL: container unknown to plugin", "sandbox", rt.ContainerID, "error", err)
		return nil
	}
	return err
}

// liveNetNS returns the first path that is a live network namespace, or "".
func liveNetNS(paths ...string) string {
	for _, p := range paths {
		if isNetNS(p) {
			return p
		}
	}
	return ""
}

// Check verifies the pod's attachment (CNI CHECK); a no-op for networks with
// disableCheck or CNI versions before 0.4.0.
func (m *Manager) Check(ctx context.Context, pn PodNetwork) error {
	list, err := m.current()
	if err != nil {
		return err
	}
	rt, err := runtimeConf(pn)
	if err != nil {
		return err
	}
	if !isNetNS(pn.NetNSPath) {
		return fmt.Errorf("netns %q of sandbox %s: %w", pn.NetNSPath, pn.ID, errdefs.ErrNotFound)
	}
	if err := m.cni.CheckNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("CNI check of network %q for sandbox %s failed: %w", list.Name, pn.ID, err)
	}
	return nil
}

// GC tears down every cached attachment whose sandbox id is not in validIDs
// (restart reconciliation: sandboxes crid no longer knows), using each
// attachment's cached config; the namespace is not passed since its owner is
// gone. For CNI >= 1.1.0 networks it then asks the plugins to GC as well.
func (m *Manager) GC(ctx context.Context, validIDs []string) error {
	valid := make(map[string]bool, len(validIDs))
	for _, id := range validIDs {
		valid[id] = true
	}
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return fmt.Errorf("failed to read CNI cache: %w", err)
	}
	var errs []error
	var gcArgs libcni.GCArgs
	for _, id := range validIDs {
		gcArgs.ValidAttachments = append(gcArgs.ValidAttachments, types.GCAttachment{ContainerID: id, IfName: DefaultIfName})
	}
	for _, att := range atts {
		if valid[att.ContainerID] {
			gcArgs.ValidAttachments = append(gcArgs.ValidAttachments, types.GCAttachment{ContainerID: att.ContainerID, IfName: att.IfName})
			continue
		}
		list, err := libcni.NetworkConfFromBytes(att.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("stale attachment %s: cached config: %w", att.ContainerID, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: att.ContainerID, IfName: att.IfName, Args: att.CniArgs, CapabilityArgs: att.CapabilityArgs}
		if err := m.del(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Errorf("stale attachment %s: %w", att.ContainerID, err))
			continue
		}
		m.log.Info("removed stale CNI attachment", "sandbox", att.ContainerID, "network", att.Network)
	}
	if list := m.net.Load().list; list != nil {
		if err := m.cni.GCNetworkList(ctx, list, &gcArgs); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("CNI garbage collection: %w", err)
	}
	return nil
}
