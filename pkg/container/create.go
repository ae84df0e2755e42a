package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/shim"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/sysinfo"
)

// createTimeout bounds the runtime's create (a hung runtime must not hold
// the call forever).
const createTimeout = 2 * time.Minute

// Create creates a container in a ready pod sandbox: records the intent,
// mounts the rootfs, writes the OCI spec and has a shim create the
// container through the pod's runtime. Any failure undoes every step.
func (m *Manager) Create(ctx context.Context, sandboxID string, cfg *runtime.ContainerConfig, pod *runtime.PodSandboxConfig) (string, error) {
	if cfg == nil || cfg.GetMetadata().GetName() == "" {
		return "", fmt.Errorf("container config with metadata.name is required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.GetImage().GetImage() == "" {
		return "", fmt.Errorf("container %q: image is required: %w", cfg.Metadata.Name, errdefs.ErrInvalidArgument)
	}
	sb, err := m.sandboxes.Resolve(sandboxID)
	if err != nil {
		return "", err
	}
	if pod == nil || pod.Metadata == nil { // kubelet sends it; other clients may not
		if pod, err = PodConfig(sb); err != nil {
			return "", err
		}
	}
	logPath, err := containerLogPath(pod.GetLogDirectory(), cfg.GetLogPath())
	if err != nil {
		return "", err
	}
	img, err := m.images.Lookup(cfg.Image.Image)
	if err != nil {
		return "", fmt.Errorf("container %q image: %w", cfg.Metadata.Name, err)
	}
	imgCfg, err := m.images.Config(img)
	if err != nil {
		return "", fmt.Errorf("container %q image config: %w", cfg.Metadata.Name, err)
	}
	vols, err := m.resolveImageVolumes(cfg)
	if err != nil {
		return "", err
	}
	sig, err := stopSignal(cfg.GetStopSignal(), imgCfg.Config.StopSignal)
	if err != nil {
		return "", err
	}
	rt, err := m.runtimeFor(sb.RuntimeHandler)
	if err != nil {
		return "", err
	}
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encode container config: %w", err)
	}
	c := &store.Container{
		ID: sandbox.NewID(), SandboxID: sb.ID, Name: cfg.Metadata.Name, Attempt: cfg.Metadata.Attempt,
		State: store.StateCreating, ImageID: img.ID, ImageRef: imageRef(img.RepoDigests, img.ID),
		CreatedAt: time.Now().UTC(), Labels: cfg.Labels, Annotations: cfg.Annotations, LogPath: logPath,
		Config: raw, RuntimeHandler: sb.RuntimeHandler, ChainIDs: img.ChainIDs, StopSignal: sig,
	}
	for _, v := range vols {
		// Kept on disk while the container exists, like its own image's.
		c.ChainIDs = append(c.ChainIDs, v.image.ChainIDs...)
	}
	release, err := m.reserveName(c)
	if err != nil {
		return "", err
	}
	defer release()
	unlock := m.lock(c.ID)
	defer unlock()
	if err := m.put(c); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	if err := m.create(ctx, c, sb, pod, cfg, imgCfg.Config, rt, vols, img.ChainIDs); err != nil {
		if rerr := m.rollback(c); rerr != nil {
			m.log.Error("rolling back a failed create", "container", c.ID, "error", rerr)
		}
		return "", fmt.Errorf("create container %q in pod %s: %w", c.Name, sb.ID, err)
	}
	m.log.Info("container created", "container", c.ID, "name", c.Name, "sandbox", sb.ID, "pid", c.Pid)
	m.publish(c.ID, c.SandboxID, EventCreated)
	return c.ID, nil
}

// create does Create's work; c is recorded as creating.
func (m *Manager) create(ctx context.Context, c *store.Container, sb *store.Sandbox, pod *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig, imgCfg ocispec.ImageConfig, rt Runtime, vols []imageVolume, rootChains []string) error {
	info, err := m.sandboxInfo(sb, pod)
	if err != nil {
		return err
	}
	bundle := m.Bundle(c.ID)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := m.mountRootfs(c, rootfs, rootChains); err != nil {
		return err
	}
	specCfg, err := m.mountImageVolumes(bundle, cfg, vols)
	if err != nil {
		return err
	}
	req := &oci.Request{
		ID: c.ID, Config: specCfg, Sandbox: info,
		Image: oci.ImageInput{Config: imgCfg, Rootfs: rootfs, Name: cfg.GetImage().GetUserSpecifiedImage()},
	}
	if t := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetTargetId(); t != "" {
		target, err := m.Resolve(t)
		if err != nil {
			return fmt.Errorf("PID namespace target: %w", err)
		}
		if target.SandboxID != sb.ID || target.State != store.StateRunning {
			return fmt.Errorf("PID namespace target %s is not a running container of this pod: %w", t, errdefs.ErrFailedPrecondition)
		}
		req.TargetPID = target.Pid
	}
	host := m.o.Host
	if cfg.GetLinux().GetSecurityContext().GetPrivileged() {
		// Privileged containers get every host device; read them now, as
		// devices come and go.
		h := *host
		if h.HostDevices, err = oci.HostDevices(); err != nil {
			return fmt.Errorf("list host devices: %w", err)
		}
		host = &h
	}
	res, err := oci.Generate(host, req)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		m.log.Warn("container spec adjusted", "container", c.ID, "warning", w)
	}
	for _, p := range res.HostPaths {
		// Kubelet expects a missing host path to be created as a directory.
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("create host path %s: %w", p, err)
			}
		}
	}
	u := res.Spec.Process.User
	c.User = &store.User{UID: u.UID, GID: u.GID, Groups: u.AdditionalGids}
	data, err := json.Marshal(res.Spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, shim.ConfigName), data, 0o600); err != nil {
		return err
	}
	if c.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
			return fmt.Errorf("create log dir: %w", err)
		}
	}
	opts := shim.Options{
		ID: c.ID, Bundle: bundle, Runtime: rt.Path, RuntimeRoot: rt.Root, SystemdCgroup: rt.SystemdCgroup,
		LogPath: c.LogPath, Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(), Tty: cfg.GetTty(),
	}
	pid, shimPid, err := shim.Launch(ctx, m.o.Exe, opts)
	c.ShimPid = shimPid
	if err != nil {
		return explainRuntimeError(rt, err)
	}
	c.Pid, c.State = pid, store.StateCreated
	// A pod stopped or removed meanwhile did not see this container (it
	// was not recorded yet when the pod listed its containers): undo it.
	if now, err := m.sandboxes.Resolve(sb.ID); err != nil || now.State != store.StateReady {
		return fmt.Errorf("pod sandbox %s was stopped or removed during the create: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	if err := m.put(c); err != nil {
		return err
	}
	m.watch(c.ID)
	return nil
}

// reserveName claims the container's name in its pod: a second create of
// the same name and attempt fails until the first is removed.
func (m *Manager) reserveName(c *store.Container) (release func(), err error) {
	key := fmt.Sprintf("%s/%s/%d", c.SandboxID, c.Name, c.Attempt)
	m.mu.Lock()
	defer m.mu.Unlock()
	if other, ok := m.names[key]; ok {
		return nil, fmt.Errorf("container name %q (attempt %d) is being created in pod %s as %s: %w", c.Name, c.Attempt, c.SandboxID, other, errdefs.ErrAlreadyExists)
	}
	existing, err := m.ofSandbox(c.SandboxID)
	if err != nil {
		return nil, err
	}
	for _, o := range existing {
		if o.Name == c.Name && o.Attempt == c.Attempt {
			return nil, fmt.Errorf("container name %q (attempt %d) is already used in pod %s by %s: %w", c.Name, c.Attempt, c.SandboxID, o.ID, errdefs.ErrAlreadyExists)
		}
	}
	m.names[key] = c.ID
	return func() {
		m.mu.Lock()
		delete(m.names, key)
		m.mu.Unlock()
	}, nil
}

// rollback undoes a failed create: the container (through its shim or
// the runtime directly), the rootfs mount, the dirs, the record.
func (m *Manager) rollback(c *store.Container) error {
	var errs []error
	if err := m.destroy(c); err != nil {
		errs = append(errs, err)
	}
	if err := m.db.Update(func(tx *store.Tx) error { return tx.DeleteContainer(c.ID) }); err != nil {
		errs = append(errs, err)
	}
	m.forget(c.ID)
	return errors.Join(errs...)
}

// containerLogPath joins kubelet's pod log directory and the container's
// relative log path, refusing paths that leave the directory.
func containerLogPath(dir, rel string) (string, error) {
	if dir == "" || rel == "" {
		return "", nil
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("pod log_directory %q must be absolute: %w", dir, errdefs.ErrInvalidArgument)
	}
	p := filepath.Join(dir, rel)
	if filepath.IsAbs(rel) || !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
		return "", fmt.Errorf("container log_path %q leaves the pod log directory: %w", rel, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// imageRef is the image_ref reported for a container: a repo digest when
// the image has one, else its id.
func imageRef(digests []string, id string) string {
	if len(digests) > 0 {
		return digests[0]
	}
	return id
}

// explainRuntimeError adds a hint where the runtime's own message is
// cryptic: crun before 1.9 cannot handle a hybrid cgroup layout.
func explainRuntimeError(rt Runtime, err error) error {
	if problem := sysinfo.RuntimeHostProblem(rt.Path); problem != "" && strings.Contains(err.Error(), "cgroup") {
		return fmt.Errorf("%w (%s; use runc or a host with cgroup v2 only)", err, problem)
	}
	return err
}
