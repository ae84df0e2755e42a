package container

import (
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci"
	"github.com/crid-dev/crid/pkg/store"
)

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

func decodeConfig(raw []byte) (*runtime.ContainerConfig, error) {
	var c runtime.ContainerConfig
	if err := unmarshal.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode container config: %w", err)
	}
	return &c, nil
}

// PodConfig decodes a sandbox record's CRI PodSandboxConfig; its metadata
// comes from the record if the config has none.
func PodConfig(sb *store.Sandbox) (*runtime.PodSandboxConfig, error) {
	var c runtime.PodSandboxConfig
	if len(sb.Config) > 0 {
		if err := unmarshal.Unmarshal(sb.Config, &c); err != nil {
			return nil, fmt.Errorf("decode pod sandbox %s config: %w", sb.ID, err)
		}
	}
	if c.Metadata == nil {
		c.Metadata = &runtime.PodSandboxMetadata{Name: sb.Name, Namespace: sb.Namespace, Uid: sb.UID, Attempt: sb.Attempt}
	}
	return &c, nil
}

// sandboxInfo is what a container's spec takes from its pod: the pinned
// namespaces, the infra (PID namespace holder), /etc files and /dev/shm.
func (m *Manager) sandboxInfo(sb *store.Sandbox, pod *runtime.PodSandboxConfig) (oci.SandboxInfo, error) {
	if sb.State != store.StateReady {
		return oci.SandboxInfo{}, fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	dir := m.sandboxes.Dir(sb.ID)
	ifExists := func(p string) string {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	hostname := pod.GetHostname()
	if b, err := os.ReadFile(filepath.Join(dir, "hostname")); err == nil && len(b) > 1 {
		hostname = string(b[:len(b)-1])
	}
	sc := pod.GetLinux().GetSecurityContext()
	return oci.SandboxInfo{
		ID: sb.ID, Name: sb.Name, Namespace: sb.Namespace, UID: sb.UID,
		Hostname:       hostname,
		NetNSPath:      sb.NetNSPath,
		IPCNSPath:      ifExists(filepath.Join(dir, "ns", "ipc")),
		UTSNSPath:      ifExists(filepath.Join(dir, "ns", "uts")),
		InfraPID:       sb.Pid,
		ResolvConfPath: ifExists(filepath.Join(dir, "resolv.conf")),
		HostsPath:      ifExists(filepath.Join(dir, "hosts")),
		HostnamePath:   ifExists(filepath.Join(dir, "hostname")),
		ShmPath:        ifExists(filepath.Join(dir, "shm")),
		CgroupParent:   pod.GetLinux().GetCgroupParent(),
		Privileged:     sc.GetPrivileged(),
		Sysctls:        pod.GetLinux().GetSysctls(),
	}, nil
}
