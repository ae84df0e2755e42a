package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/store"
)

// Run creates and starts a pod sandbox. The record is written in state
// "creating" first; every step after it is undone if a later one fails,
// and a crash in between is rolled back by Recover.
func (m *Manager) Run(ctx context.Context, c *Config) (*store.Sandbox, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	sb := &store.Sandbox{
		ID: newID(), Name: c.Name, Namespace: c.Namespace, UID: c.UID, Attempt: c.Attempt,
		State: store.StateCreating, RuntimeHandler: c.RuntimeHandler, CreatedAt: time.Now().UTC(),
		Labels: c.Labels, Annotations: c.Annotations, Config: c.Raw, HostNetwork: c.HostNetwork,
	}
	unlock := m.lock(sb.ID)
	defer unlock()
	cg, err := CgroupPath(m.driver, c.CgroupParent, sb.ID)
	if err != nil {
		return nil, err
	}
	sb.CgroupPath = cg
	if err := m.recordIntent(sb); err != nil {
		return nil, err
	}
	if err := m.setup(ctx, sb, c); err != nil {
		if rbErr := m.teardown(context.WithoutCancel(ctx), sb, true, true); rbErr != nil {
			m.log.Error("rolling back failed sandbox", "sandbox", sb.ID, "error", rbErr)
		}
		return nil, fmt.Errorf("run pod sandbox %s/%s: %w", c.Namespace, c.Name, err)
	}
	sb.State = store.StateReady
	if err := m.put(sb); err != nil {
		m.teardown(context.WithoutCancel(ctx), sb, true, true)
		return nil, fmt.Errorf("record sandbox %s: %w", sb.ID, err)
	}
	m.log.Info("pod sandbox ready", "sandbox", sb.ID, "pod", c.Namespace+"/"+c.Name, "ip", sb.IP)
	return sb, nil
}

// recordIntent checks for a sandbox of the same name and attempt and writes
// the "creating" record, atomically with respect to other Runs.
func (m *Manager) recordIntent(sb *store.Sandbox) error {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	return m.db.Update(func(tx *store.Tx) error {
		all, err := tx.Sandboxes()
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.Name == sb.Name && o.Namespace == sb.Namespace && o.UID == sb.UID && o.Attempt == sb.Attempt {
				return fmt.Errorf("pod sandbox %s/%s (uid %s, attempt %d) already exists as %s: %w",
					sb.Namespace, sb.Name, sb.UID, sb.Attempt, o.ID, errdefs.ErrAlreadyExists)
			}
		}
		return tx.PutSandbox(sb)
	})
}

// setup does the work of Run; independent steps run concurrently.
func (m *Manager) setup(ctx context.Context, sb *store.Sandbox, c *Config) error {
	dir := m.dir(sb.ID)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("create sandbox dir: %w", err)
	}
	netnsPath := ""
	if !c.HostNetwork {
		if err := os.MkdirAll(m.netnsDir, 0o711); err != nil {
			return err
		}
		ns, err := netns.New(m.netnsDir, sb.ID)
		if err != nil {
			return err
		}
		netnsPath = ns.Path()
		// Not recorded yet: Recover finds an orphaned pin by its name, the id.
		sb.NetNSPath = netnsPath
	}
	var podCIDR string
	m.db.View(func(tx *store.Tx) error { podCIDR = tx.PodCIDR(); return nil })

	var wg sync.WaitGroup
	var mu sync.Mutex // guards sb while the steps below fill it in
	var netErr, infraErr, shmErr error
	if !c.HostNetwork {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pn := podNetwork(sb, c)
			if podCIDR != "" {
				pn.IPRanges = []string{podCIDR}
			}
			res, err := m.network.Setup(ctx, pn)
			if err != nil {
				netErr = err
				return
			}
			mu.Lock()
			sb.IP, sb.AdditionalIPs, sb.CNIResult = res.IP, res.AdditionalIPs, res.Raw
			mu.Unlock()
		}()
	}
	if !c.HostIPC {
		wg.Add(1)
		go func() { defer wg.Done(); shmErr = mountShm(filepath.Join(dir, "shm"), m.shmSize) }()
	}
	hostname := c.Hostname
	if c.HostNetwork {
		hostname = "" // the host's UTS namespace name stays; infra gets its own anyway
	}
	infra, err := m.startInfra(netnsPath, hostname, c.Sysctls, c.PodPID && !c.HostPID, filepath.Join(dir, "infra.log"))
	if err != nil {
		infraErr = err
	} else {
		// Record the pid now, so a crash before "ready" cannot leak the process.
		mu.Lock()
		sb.Pid, sb.PidStart = infra.pid, infra.start
		rec := *sb
		mu.Unlock()
		infraErr = errors.Join(m.put(&rec), pinNamespaces(dir, infra.pid))
		if infraErr == nil && sb.CgroupPath != "" {
			infraErr = joinCgroup(sb.CgroupPath, infra.pid)
		}
	}
	wg.Wait()
	if err := errors.Join(netErr, infraErr, shmErr); err != nil {
		return err
	}
	return writeFiles(dir, c, sb.IP)
}

func podNetwork(sb *store.Sandbox, c *Config) netns.PodNetwork {
	pn := netns.PodNetwork{
		ID: sb.ID, NetNSPath: sb.NetNSPath, PodName: sb.Name, PodNamespace: sb.Namespace, PodUID: sb.UID,
		DNS: c.DNS, CgroupPath: c.CgroupParent, PortMappings: c.PortMappings,
	}
	pn.Bandwidth, _ = netns.ParseBandwidth(c.Annotations) // validated in Validate
	return pn
}

// teardown undoes whatever of a sandbox exists: CNI, infra, and with remove
// also mounts, netns, files and the record. Each step tolerates "already
// gone" and runs even when an earlier one failed. The record is kept on
// error so RemovePodSandbox can be retried, except with force (rollback and
// recovery), where a failed CNI DEL must not leave a half-made pod behind.
func (m *Manager) teardown(ctx context.Context, sb *store.Sandbox, remove, force bool) error {
	var errs []error
	if !sb.HostNetwork {
		pn := netns.PodNetwork{ID: sb.ID, NetNSPath: sb.NetNSPath, PodName: sb.Name, PodNamespace: sb.Namespace, PodUID: sb.UID}
		if err := m.network.Teardown(ctx, pn); err != nil {
			err = fmt.Errorf("CNI teardown: %w", err)
			if !force {
				errs = append(errs, err)
			} else {
				m.log.Warn("CNI teardown failed during rollback; removing the pod anyway", "sandbox", sb.ID, "error", err)
			}
		}
	}
	if err := killProc(infraProc{pid: sb.Pid, start: sb.PidStart}, 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroup(sb.CgroupPath); err != nil {
		errs = append(errs, err)
	}
	if !remove {
		return errors.Join(errs...)
	}
	dir := m.dir(sb.ID)
	if err := unmountAll(dir); err != nil {
		errs = append(errs, err)
	}
	if sb.NetNSPath != "" {
		// Unmount and delete the pin directly: it may be a stale file.
		if err := unmountAll(sb.NetNSPath); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(sb.NetNSPath); err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("remove netns pin: %w", err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := m.db.Update(func(tx *store.Tx) error { return tx.DeleteSandbox(sb.ID) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
