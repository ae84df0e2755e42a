package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/store"
)

// infraGrace is how long a stopping infra gets between SIGTERM and SIGKILL;
// it exits on SIGTERM at once.
const infraGrace = 2 * time.Second

// Run creates and starts a pod sandbox. The record is written in state
// "creating" first, naming everything crid will make for it (netns pin,
// sandbox dir, cgroup; the infra process is found by its command line);
// any failure rolls back every step, and a crash in between is rolled back
// by Recover.
func (m *Manager) Run(ctx context.Context, c *Config) (*store.Sandbox, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	sb := &store.Sandbox{
		ID: NewID(), Name: c.Name, Namespace: c.Namespace, UID: c.UID, Attempt: c.Attempt,
		State: store.StateCreating, RuntimeHandler: c.RuntimeHandler, CreatedAt: time.Now().UTC(),
		Labels: c.Labels, Annotations: c.Annotations, Config: c.Raw, HostNetwork: c.HostNetwork,
	}
	cg, err := CgroupPath(m.driver, c.CgroupParent, sb.ID)
	if err != nil {
		return nil, err
	}
	sb.CgroupPath = cg
	if !c.HostNetwork {
		sb.NetNSPath = filepath.Join(m.netnsDir, sb.ID)
	}
	unlock := m.lock(sb.ID)
	defer unlock()
	podCIDR, err := m.recordIntent(sb)
	if err != nil {
		return nil, err
	}
	rollback := func(cause error) error {
		if err := m.teardown(context.WithoutCancel(ctx), sb, true, true); err != nil {
			m.log.Error("rolling back failed pod sandbox", "sandbox", sb.ID, "error", err)
		}
		return fmt.Errorf("run pod sandbox %s/%s: %w", c.Namespace, c.Name, cause)
	}
	if err := m.setup(ctx, sb, c, podCIDR); err != nil {
		return nil, rollback(err)
	}
	sb.State = store.StateReady
	if err := m.put(sb); err != nil {
		return nil, rollback(err)
	}
	if p := m.infra(sb.ID); p == nil || p.exited() {
		// Died between "ok" and the record: its watch saw a "creating" pod.
		m.infraDied(sb.ID, sb.Pid)
	}
	m.log.Info("pod sandbox ready", "sandbox", sb.ID, "pod", c.Namespace+"/"+c.Name, "ip", sb.IP, "pid", sb.Pid)
	return sb, nil
}

// recordIntent checks for a sandbox of the same name, namespace, uid and
// attempt and writes the "creating" record in one transaction, so two
// concurrent Runs of the same pod cannot both pass. It returns the pod CIDR
// kubelet last set, read in the same transaction.
func (m *Manager) recordIntent(sb *store.Sandbox) (podCIDR string, err error) {
	err = m.db.Update(func(tx *store.Tx) error {
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
		podCIDR = tx.PodCIDR()
		return tx.PutSandbox(sb)
	})
	return podCIDR, err
}

// setup does the work of Run. Steps that do not depend on each other run
// concurrently: netns then CNI ADD then net sysctls; the infra process as
// soon as the netns exists, then its namespace pins and cgroup; /dev/shm.
// The first failure cancels the rest and is the error returned.
func (m *Manager) setup(ctx context.Context, sb *store.Sandbox, c *Config, podCIDR string) error {
	dir := m.dir(sb.ID)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("create sandbox dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards sb and first while the steps run
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		} else {
			m.log.Debug("pod sandbox setup: further error", "sandbox", sb.ID, "error", err)
		}
		mu.Unlock()
		cancel()
	}
	netSysctls, ipcSysctls := splitSysctls(c)

	nsReady := make(chan *netns.NetNS, 1)
	if c.HostNetwork {
		nsReady <- nil
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns, err := netns.New(m.netnsDir, sb.ID)
			nsReady <- ns
			if err != nil {
				fail(err)
				return
			}
			pn := podNetwork(sb, c)
			if podCIDR != "" {
				pn.IPRanges = []string{podCIDR}
			}
			res, err := m.network.Setup(ctx, pn)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			sb.IP, sb.AdditionalIPs, sb.CNIResult = res.IP, res.AdditionalIPs, res.Raw
			mu.Unlock()
			// After ADD, so that per-interface ones find the pod's eth0.
			if len(netSysctls) > 0 {
				if err := ns.Do(func() error { return writeSysctls(netSysctls) }); err != nil {
					fail(err)
				}
			}
		}()
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		ns := <-nsReady
		if !c.HostNetwork && ns == nil {
			return // the netns failed; reported above
		}
		spec := infraSpec{
			id: sb.ID, hostname: effectiveHostname(c), sysctls: ipcSysctls,
			newUTS: !c.HostNetwork, newIPC: !c.HostIPC, newPID: c.PodPID && !c.HostPID,
		}
		if ns != nil {
			spec.netnsPath = ns.Path()
		}
		proc, err := m.startInfra(ctx, spec)
		if err != nil {
			fail(err)
			return
		}
		m.setInfra(sb.ID, proc)
		mu.Lock()
		sb.Pid, sb.PidStart = proc.pid, proc.start
		mu.Unlock()
		var kinds []string
		if spec.newIPC {
			kinds = append(kinds, "ipc")
		}
		if spec.newUTS {
			kinds = append(kinds, "uts")
		}
		if err := pinNamespaces(dir, proc.pid, kinds); err != nil {
			fail(err)
			return
		}
		if sb.CgroupPath != "" {
			if err := joinCgroup(sb.CgroupPath, proc.pid, m.cgroupRecord(sb.ID)); err != nil {
				fail(err)
			}
		}
	}()

	if !c.HostIPC {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mountShm(filepath.Join(dir, "shm"), m.shmSize); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return writeFiles(dir, c, sb.IP)
}

// effectiveHostname is the pod's host name: the configured one, else the
// pod name when that is a valid host name, else the node's (host network).
func effectiveHostname(c *Config) string {
	if c.Hostname != "" {
		return c.Hostname
	}
	if c.HostNetwork {
		h, _ := os.Hostname()
		return h
	}
	// Like kubelet: the pod name, cut to the kernel's 64-byte limit
	// (63, without a trailing '-' or '.').
	name := strings.ToLower(c.Name)
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	if validHostname(name) {
		return name
	}
	return ""
}

// writeSysctls writes sysctls through /proc/sys, which resolves network
// sysctls in the calling thread's network namespace.
func writeSysctls(sysctls map[string]string) error {
	for k, v := range sysctls {
		if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("set sysctl %s=%s in the pod: %w", k, v, err)
		}
	}
	return nil
}

func podNetwork(sb *store.Sandbox, c *Config) netns.PodNetwork {
	pn := netns.PodNetwork{
		ID: sb.ID, NetNSPath: sb.NetNSPath, PodName: sb.Name, PodNamespace: sb.Namespace, PodUID: sb.UID,
		DNS: c.DNS, CgroupPath: c.CgroupParent, PortMappings: c.PortMappings,
	}
	pn.Bandwidth, _ = netns.ParseBandwidth(c.Annotations) // validated in Validate
	return pn
}

func (m *Manager) cgroupRecord(id string) string { return filepath.Join(m.dir(id), "cgroups.json") }

// release stops what runs for a sandbox and frees its node resources: the
// infra process and CNI DEL (concurrently), then the netns pin, the mounts
// under its dir (/dev/shm, namespace pins) and its cgroups. Each step
// tolerates "already gone" and runs even when another failed. netDown
// reports that the network is torn down (or never was set up).
func (m *Manager) release(ctx context.Context, sb *store.Sandbox) (netDown bool, err error) {
	var infraErr, netErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); infraErr = m.stopInfra(sb) }()
	if !sb.HostNetwork && !sb.NetworkDown {
		pn := netns.PodNetwork{ID: sb.ID, NetNSPath: sb.NetNSPath, PodName: sb.Name, PodNamespace: sb.Namespace, PodUID: sb.UID}
		if err := m.network.Teardown(ctx, pn); err != nil {
			netErr = fmt.Errorf("CNI teardown: %w", err)
		}
	}
	wg.Wait()
	errs := []error{infraErr, netErr}
	if sb.NetNSPath != "" && netErr == nil {
		errs = append(errs, removePin(sb.NetNSPath))
	}
	errs = append(errs, unmountAll(m.dir(sb.ID)))
	if infraErr == nil {
		errs = append(errs, removeCgroup(sb.CgroupPath, m.cgroupRecord(sb.ID)))
	}
	return netErr == nil, errors.Join(errs...)
}

// teardown releases a sandbox and, with remove, deletes its pin, dir and
// record. The record is kept on error so RemovePodSandbox can be retried,
// except with force (rollback and recovery), where a failed CNI DEL must
// not leave a half-made pod behind (its leases are retried by CNI GC).
func (m *Manager) teardown(ctx context.Context, sb *store.Sandbox, remove, force bool) error {
	_, err := m.release(ctx, sb)
	if !remove {
		return err
	}
	if err != nil && !force {
		return err
	}
	if err != nil {
		m.log.Warn("pod sandbox teardown incomplete; removing it anyway", "sandbox", sb.ID, "error", err)
	}
	var errs []error
	if sb.NetNSPath != "" {
		errs = append(errs, removePin(sb.NetNSPath))
	}
	if err := os.RemoveAll(m.dir(sb.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil && !force {
		return err
	}
	if err := m.db.Update(func(tx *store.Tx) error { return tx.DeleteSandbox(sb.ID) }); err != nil {
		return fmt.Errorf("delete pod sandbox record %s: %w", sb.ID, err)
	}
	return nil
}

// removePin unmounts and deletes a netns pin, which may be stale or gone.
func removePin(path string) error {
	if err := unmountAll(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove netns pin: %w", err)
	}
	return nil
}

// setInfra registers a sandbox's live infra; if it exits without being
// stopped through stopInfra, the sandbox becomes not ready.
func (m *Manager) setInfra(id string, p *watchedProc) {
	m.mu.Lock()
	m.infras[id] = p
	m.mu.Unlock()
	go func() {
		<-p.done
		m.mu.Lock()
		cur := m.infras[id]
		if cur == p {
			delete(m.infras, id)
		}
		m.mu.Unlock()
		if cur == p {
			m.infraDied(id, p.pid)
		}
	}()
}

func (m *Manager) infra(id string) *watchedProc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infras[id]
}

// infraDied marks a ready sandbox whose infra process pid has exited not
// ready, so kubelet recreates it.
func (m *Manager) infraDied(id string, pid int) {
	changed := false
	err := m.db.Update(func(tx *store.Tx) error {
		sb, err := tx.Sandbox(id)
		if err != nil || sb.State != store.StateReady || sb.Pid != pid {
			return nil
		}
		sb.State, changed = store.StateNotReady, true
		return tx.PutSandbox(sb)
	})
	if err != nil {
		m.log.Error("cannot mark pod sandbox not ready after its infra exited", "sandbox", id, "error", err)
	} else if changed {
		m.log.Warn("pod sandbox infra process exited; sandbox is not ready", "sandbox", id, "pid", pid)
	}
}

// stopInfra ends the sandbox's infra process, if it still runs.
func (m *Manager) stopInfra(sb *store.Sandbox) error {
	m.mu.Lock()
	p := m.infras[sb.ID]
	delete(m.infras, sb.ID)
	m.mu.Unlock()
	if p == nil && sb.Pid != 0 {
		var err error
		if p, err = watchProc(sb.Pid, sb.PidStart, false); errors.Is(err, errProcGone) {
			return nil
		} else if err != nil {
			return err
		}
	}
	if p == nil {
		return nil
	}
	if err := p.stop(infraGrace); err != nil {
		return fmt.Errorf("stop infra process of pod sandbox %s: %w", sb.ID, err)
	}
	return nil
}
