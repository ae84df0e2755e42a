package netns

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestRuntimeConf(t *testing.T) {
	base := PodNetwork{ID: "sb1", NetNSPath: "/run/crid/netns/sb1", PodName: "web", PodNamespace: "ns1", PodUID: "u1"}
	for _, tc := range []struct {
		name    string
		mod     func(*PodNetwork)
		caps    string // JSON of CapabilityArgs
		wantErr bool
	}{
		{name: "no capabilities", mod: func(*PodNetwork) {}, caps: `{}`},
		{
			name: "ports lowercased, defaulted, hostPort 0 dropped",
			mod: func(p *PodNetwork) {
				p.PortMappings = []PortMapping{
					{HostPort: 8080, ContainerPort: 80, Protocol: "TCP", HostIP: "127.0.0.1"},
					{HostPort: 53, ContainerPort: 53, Protocol: "UDP"},
					{HostPort: 9000, ContainerPort: 9000},
					{HostPort: 0, ContainerPort: 443, Protocol: "TCP"},
				}
			},
			caps: `{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"},` +
				`{"hostPort":53,"containerPort":53,"protocol":"udp"},{"hostPort":9000,"containerPort":9000,"protocol":"tcp"}]}`,
		},
		{
			name: "bandwidth, dns, ipRanges, cgroupPath",
			mod: func(p *PodNetwork) {
				p.Bandwidth = &Bandwidth{IngressRate: 1000, IngressBurst: 5}
				p.DNS = &DNS{Servers: []string{"10.0.0.10"}, Searches: []string{"svc"}, Options: []string{"ndots:5"}}
				p.IPRanges = []string{"10.1.0.0/24, fd00:1::/64"}
				p.CgroupPath = "/kubepods/pod1"
			},
			caps: `{"bandwidth":{"ingressRate":1000,"ingressBurst":5,"egressRate":0,"egressBurst":0},` +
				`"cgroupPath":"/kubepods/pod1",` +
				`"dns":{"servers":["10.0.0.10"],"searches":["svc"],"options":["ndots:5"]},` +
				`"ipRanges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]]}`,
		},
		{name: "no id", mod: func(p *PodNetwork) { p.ID = "" }, wantErr: true},
		{name: "bad protocol", mod: func(p *PodNetwork) { p.PortMappings = []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "icmp"}} }, wantErr: true},
		{name: "bad port", mod: func(p *PodNetwork) { p.PortMappings = []PortMapping{{HostPort: 70000, ContainerPort: 1}} }, wantErr: true},
		{name: "bad host ip", mod: func(p *PodNetwork) { p.PortMappings = []PortMapping{{HostPort: 1, ContainerPort: 1, HostIP: "x"}} }, wantErr: true},
		{name: "bad cidr", mod: func(p *PodNetwork) { p.IPRanges = []string{"10.0.0.0/33"} }, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pn := base
			tc.mod(&pn)
			rt, err := runtimeConf(pn)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.ContainerID != "sb1" || rt.NetNS != base.NetNSPath || rt.IfName != "eth0" {
				t.Fatalf("rt = %+v", rt)
			}
			wantArgs := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ns1"}, {"K8S_POD_NAME", "web"},
				{"K8S_POD_INFRA_CONTAINER_ID", "sb1"}, {"K8S_POD_UID", "u1"}}
			if got, _ := json.Marshal(rt.Args); string(got) != mustJSON(t, wantArgs) {
				t.Fatalf("Args = %s", got)
			}
			if got, _ := json.Marshal(rt.CapabilityArgs); string(got) != tc.caps {
				t.Fatalf("CapabilityArgs =\n%s\nwant\n%s", got, tc.caps)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewResultPicksPodIPs(t *testing.T) {
	parse := func(t *testing.T, version, s string) types.Result {
		t.Helper()
		var r types.Result
		var err error
		if version == "0.4.0" {
			r, err = types040.NewResult([]byte(s))
		} else {
			r, err = types100.NewResult([]byte(s))
		}
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name, version, result string
		ip                    string
		more                  []string
	}{
		{
			name: "IPv4 first, host-side address skipped", version: "1.0.0",
			result: `{"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/ns"}],
				"ips":[{"address":"fd00::5/64","interface":1},{"address":"10.0.0.1/24","interface":0},{"address":"10.0.0.5/24","interface":1}]}`,
			ip: "10.0.0.5", more: []string{"fd00::5"},
		},
		{
			name: "old version converted, no interface index", version: "0.4.0",
			result: `{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.9.0.7/16"}]}`,
			ip:     "10.9.0.7",
		},
		{
			name: "no IPs", version: "1.0.0",
			result: `{"cniVersion":"1.0.0"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := newResult("net", "eth0", parse(t, tc.version, tc.result))
			if err != nil {
				t.Fatal(err)
			}
			if res.IP != tc.ip || len(res.AdditionalIPs) != len(tc.more) {
				t.Fatalf("IP %q additional %v, want %q %v", res.IP, res.AdditionalIPs, tc.ip, tc.more)
			}
			for i := range tc.more {
				if res.AdditionalIPs[i] != tc.more[i] {
					t.Fatalf("additional %v, want %v", res.AdditionalIPs, tc.more)
				}
			}
			var raw map[string]any
			if err := json.Unmarshal(res.Raw, &raw); err != nil || raw["cniVersion"] == "" {
				t.Fatalf("Raw %s: %v", res.Raw, err)
			}
		})
	}
}
