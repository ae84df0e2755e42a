package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/store"
)

// PodSandboxStatus reports a sandbox's state, network and config.
func (s *RuntimeService) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("PodSandboxStatus: pod sandbox id is empty")
	}
	sb, err := s.sandboxes.Resolve(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	// With its containers' statuses and a timestamp, as kubelet's evented
	// PLEG reads them.
	containers, err := s.podContainerStatuses(sb.ID)
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{Status: podSandboxStatus(sb), ContainersStatuses: containers, Timestamp: time.Now().UnixNano()}
	if req.Verbose {
		info, err := json.Marshal(map[string]any{
			"pid": sb.Pid, "pidStartTime": sb.PidStart, "netnsPath": sb.NetNSPath, "runtimeHandler": sb.RuntimeHandler,
			"state": sb.State, "hostNetwork": sb.HostNetwork, "networkTornDown": sb.NetworkDown, "cgroupPath": sb.CgroupPath,
			"sandboxDir": s.sandboxes.Dir(sb.ID),
			"cniResult":  json.RawMessage(orNull(sb.CNIResult)), "config": json.RawMessage(orNull(sb.Config)),
		})
		if err != nil {
			return nil, fmt.Errorf("encode sandbox %s info: %w", sb.ID, err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// podSandboxStatus is a sandbox's CRI status.
func podSandboxStatus(sb *store.Sandbox) *runtime.PodSandboxStatus {
	cfg := sandboxConfig(sb)
	st := &runtime.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       cfg.Metadata,
		State:          sandboxState(sb.State),
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         sb.Labels,
		Annotations:    sb.Annotations,
		RuntimeHandler: sb.RuntimeHandler,
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if !sb.HostNetwork {
		st.Network = &runtime.PodSandboxNetworkStatus{Ip: sb.IP}
		for _, ip := range sb.AdditionalIPs {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	return st
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

// sandboxConfig decodes the CRI config kept in the record.
func sandboxConfig(sb *store.Sandbox) *runtime.PodSandboxConfig {
	// Written by RunPodSandbox; an undecodable one still has the record's metadata.
	cfg, err := container.PodConfig(sb)
	if err != nil {
		cfg, _ = container.PodConfig(&store.Sandbox{ID: sb.ID, Name: sb.Name, Namespace: sb.Namespace, UID: sb.UID, Attempt: sb.Attempt})
	}
	return cfg
}

func sandboxState(s store.State) runtime.PodSandboxState {
	if s == store.StateReady {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}
