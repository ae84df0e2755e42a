package netns

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// DefaultIfName is the pod's interface name when PodNetwork.IfName is empty.
const DefaultIfName = "eth0"

// PodNetwork is what one CNI call needs to know about a pod sandbox.
type PodNetwork struct {
	ID           string // sandbox id, the CNI ContainerID
	NetNSPath    string // pinned namespace (NetNS.Path)
	IfName       string // default "eth0"
	PodName      string
	PodNamespace string
	PodUID       string
	PortMappings []PortMapping // only those with HostPort > 0 are passed
	Bandwidth    *Bandwidth    // see ParseBandwidth
	DNS          *DNS
	// IPRanges are pod CIDRs (from UpdateRuntimeConfig); an entry may be a
	// comma-separated dual-stack list. Each CIDR becomes one range set.
	IPRanges   []string
	CgroupPath string // the sandbox's cgroup parent, capability "cgroupPath"
}

// PortMapping is one hostPort of a pod (capability "portMappings").
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // tcp (default), udp or sctp; any case
	HostIP        string
}

// Bandwidth is the "bandwidth" capability: rates in bits per second,
// bursts in bits.
type Bandwidth struct {
	IngressRate  uint64
	IngressBurst uint64
	EgressRate   uint64
	EgressBurst  uint64
}

// DNS is the "dns" capability.
type DNS struct {
	Servers  []string
	Searches []string
	Options  []string
}

// Result is the outcome of a CNI ADD.
type Result struct {
	Network       string   // network (config list) name
	IfName        string   // pod interface
	IP            string   // primary pod IP, IPv4 preferred
	AdditionalIPs []string // the other pod IPs
	Raw           []byte   // the result as current-version (1.x) CNI JSON
}

// JSON shapes of the runtime capabilities (CNI CONVENTIONS.md).
type (
	capPortMapping struct {
		HostPort      int32  `json:"hostPort"`
		ContainerPort int32  `json:"containerPort"`
		Protocol      string `json:"protocol"`
		HostIP        string `json:"hostIP,omitempty"`
	}
	capBandwidth struct {
		IngressRate  uint64 `json:"ingressRate"`
		IngressBurst uint64 `json:"ingressBurst"`
		EgressRate   uint64 `json:"egressRate"`
		EgressBurst  uint64 `json:"egressBurst"`
	}
	capDNS struct {
		Servers  []string `json:"servers,omitempty"`
		Searches []string `json:"searches,omitempty"`
		Options  []string `json:"options,omitempty"`
	}
	capIPRange struct {
		Subnet string `json:"subnet"`
	}
)

// runtimeConf builds the libcni arguments for pn. libcni passes each
// capability only to plugins whose config declares it.
func runtimeConf(pn PodNetwork) (*libcni.RuntimeConf, error) {
	if pn.ID == "" {
		return nil, fmt.Errorf("pod network without sandbox id: %w", errdefs.ErrInvalidArgument)
	}
	ifName := pn.IfName
	if ifName == "" {
		ifName = DefaultIfName
	}
	rt := &libcni.RuntimeConf{
		ContainerID: pn.ID,
		NetNS:       pn.NetNSPath,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pn.PodNamespace},
			{"K8S_POD_NAME", pn.PodName},
			{"K8S_POD_INFRA_CONTAINER_ID", pn.ID},
			{"K8S_POD_UID", pn.PodUID},
		},
		CapabilityArgs: map[string]any{},
	}

	var ports []capPortMapping
	for _, p := range pn.PortMappings {
		if p.HostPort <= 0 {
			continue // not a host port; nothing for the portmap plugin
		}
		proto := strings.ToLower(p.Protocol)
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp", "sctp":
		default:
			return nil, fmt.Errorf("port mapping %d: unsupported protocol %q: %w", p.HostPort, p.Protocol, errdefs.ErrInvalidArgument)
		}
		if p.HostPort > 65535 || p.ContainerPort <= 0 || p.ContainerPort > 65535 {
			return nil, fmt.Errorf("port mapping %d->%d: port out of range: %w", p.HostPort, p.ContainerPort, errdefs.ErrInvalidArgument)
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			return nil, fmt.Errorf("port mapping %d: invalid host IP %q: %w", p.HostPort, p.HostIP, errdefs.ErrInvalidArgument)
		}
		ports = append(ports, capPortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
	}
	if len(ports) > 0 {
		rt.CapabilityArgs["portMappings"] = ports
	}
	if b := pn.Bandwidth; b != nil {
		rt.CapabilityArgs["bandwidth"] = capBandwidth{b.IngressRate, b.IngressBurst, b.EgressRate, b.EgressBurst}
	}
	if d := pn.DNS; d != nil {
		rt.CapabilityArgs["dns"] = capDNS{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	var ranges [][]capIPRange
	for _, entry := range pn.IPRanges {
		for _, cidr := range strings.Split(entry, ",") {
			cidr = strings.TrimSpace(cidr)
			if cidr == "" {
				continue
			}
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				return nil, fmt.Errorf("invalid pod CIDR %q: %w", cidr, errdefs.ErrInvalidArgument)
			}
			ranges = append(ranges, []capIPRange{{Subnet: cidr}})
		}
	}
	if len(ranges) > 0 {
		rt.CapabilityArgs["ipRanges"] = ranges
	}
	if pn.CgroupPath != "" {
		rt.CapabilityArgs["cgroupPath"] = pn.CgroupPath
	}
	return rt, nil
}

// newResult converts a plugin result of any CNI version to 1.0.0 and picks
// the pod IPs: addresses on interfaces inside the sandbox (or not tied to an
// interface), IPv4 before IPv6, in result order.
func newResult(network, ifName string, res types.Result) (*Result, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("failed to convert CNI result: %w", err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("failed to encode CNI result: %w", err)
	}
	var v4, v6 []string
	for _, ipc := range r.IPs {
		if ipc == nil || ipc.Address.IP == nil {
			continue
		}
		if i := ipc.Interface; i != nil && *i >= 0 && *i < len(r.Interfaces) && r.Interfaces[*i].Sandbox == "" {
			continue // host side (e.g. a bridge gateway address)
		}
		if ipc.Address.IP.To4() != nil {
			v4 = append(v4, ipc.Address.IP.String())
		} else {
			v6 = append(v6, ipc.Address.IP.String())
		}
	}
	out := &Result{Network: network, IfName: ifName, Raw: raw}
	if ips := append(v4, v6...); len(ips) > 0 {
		out.IP, out.AdditionalIPs = ips[0], ips[1:]
	}
	return out, nil
}
