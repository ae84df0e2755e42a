package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// RunPodSandbox creates and starts a pod sandbox and returns its id.
func (s *RuntimeService) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	if cfg == nil || cfg.Metadata == nil {
		return nil, invalid("RunPodSandbox: config and metadata are required")
	}
	handler := req.GetRuntimeHandler()
	if handler == "" {
		handler = s.cfg.DefaultRuntime
	}
	if _, ok := s.cfg.Runtimes[handler]; !ok {
		return nil, invalid("RunPodSandbox: runtime handler %q is not configured (have %s)", handler, strings.Join(s.cfg.HandlerNames(), ", "))
	}
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode sandbox config: %w", err)
	}
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	c := &sandbox.Config{
		Name: cfg.Metadata.Name, Namespace: cfg.Metadata.Namespace, UID: cfg.Metadata.Uid, Attempt: cfg.Metadata.Attempt,
		Hostname: cfg.Hostname, Labels: cfg.Labels, Annotations: cfg.Annotations,
		HostNetwork: ns.GetNetwork() == runtime.NamespaceMode_NODE,
		HostIPC:     ns.GetIpc() == runtime.NamespaceMode_NODE,
		HostPID:     ns.GetPid() == runtime.NamespaceMode_NODE,
		PodPID:      ns.GetPid() == runtime.NamespaceMode_POD,
		Sysctls:     cfg.GetLinux().GetSysctls(), CgroupParent: cfg.GetLinux().GetCgroupParent(),
		RuntimeHandler: handler, Raw: raw,
	}
	if dns := cfg.DnsConfig; dns != nil {
		c.DNS = &netns.DNS{Servers: dns.Servers, Searches: dns.Searches, Options: dns.Options}
	}
	for _, pm := range cfg.PortMappings {
		c.PortMappings = append(c.PortMappings, netns.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, HostIP: pm.HostIp,
			Protocol: strings.ToLower(pm.Protocol.String()),
		})
	}
	sb, err := s.sandboxes.Run(ctx, c)
	if err != nil {
		return nil, err
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}
