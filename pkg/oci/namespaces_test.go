package oci

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestNamespaces(t *testing.T) {
	const (
		net = "/run/crid/netns/sb1"
		ipc = "/run/crid/sandboxes/sb1/ns/ipc"
		uts = "/run/crid/sandboxes/sb1/ns/uts"
	)
	mnt := specs.LinuxNamespace{Type: specs.MountNamespace}
	ns := func(t specs.LinuxNamespaceType, p string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: t, Path: p}
	}
	cases := []struct {
		name         string
		opts         *runtime.NamespaceOption
		sb           func(*SandboxInfo)
		targetPID    int
		cgroupV2     bool
		privileged   bool
		want         []specs.LinuxNamespace
		wantHostname string
		err          error
	}{
		{name: "pod network/ipc/uts, own pid", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
			want:         []specs.LinuxNamespace{mnt, ns("network", net), ns("ipc", ipc), ns("uts", uts), ns("pid", "")},
			wantHostname: "pod-host"},
		{name: "pod pid from the infra", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD},
			want:         []specs.LinuxNamespace{mnt, ns("network", net), ns("ipc", ipc), ns("uts", uts), ns("pid", "/proc/4242/ns/pid")},
			wantHostname: "pod-host"},
		{name: "pod pid pinned", opts: &runtime.NamespaceOption{}, sb: func(s *SandboxInfo) { s.PIDNSPath = "/run/pin/pid" },
			want:         []specs.LinuxNamespace{mnt, ns("network", net), ns("ipc", ipc), ns("uts", uts), ns("pid", "/run/pin/pid")},
			wantHostname: "pod-host"},
		{name: "pod pid without infra", opts: &runtime.NamespaceOption{}, sb: func(s *SandboxInfo) { s.InfraPID = 0 }, err: errdefs.ErrFailedPrecondition},
		{name: "host network: host net and uts", opts: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER},
			want: []specs.LinuxNamespace{mnt, ns("ipc", ipc), ns("pid", "")}},
		{name: "host everything", opts: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE},
			want: []specs.LinuxNamespace{mnt}},
		{name: "POD but the pod has the host's network (no path)", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
			sb:   func(s *SandboxInfo) { s.NetNSPath, s.UTSNSPath = "", "" },
			want: []specs.LinuxNamespace{mnt, ns("ipc", ipc), ns("pid", "")}},
		{name: "container network", opts: &runtime.NamespaceOption{Network: runtime.NamespaceMode_CONTAINER, Pid: runtime.NamespaceMode_CONTAINER},
			want:         []specs.LinuxNamespace{mnt, ns("network", ""), ns("ipc", ipc), ns("uts", uts), ns("pid", "")},
			wantHostname: "pod-host"},
		{name: "target pid", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "c0"}, targetPID: 777,
			want:         []specs.LinuxNamespace{mnt, ns("network", net), ns("ipc", ipc), ns("uts", uts), ns("pid", "/proc/777/ns/pid")},
			wantHostname: "pod-host"},
		{name: "target without id", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}, targetPID: 777, err: errInvalid},
		{name: "target not running", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "c0"}, err: errdefs.ErrFailedPrecondition},
		{name: "cgroup v2: own cgroup namespace", cgroupV2: true, opts: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE},
			want: []specs.LinuxNamespace{mnt, ns("cgroup", "")}},
		{name: "cgroup v2 privileged: host cgroup namespace", cgroupV2: true, privileged: true,
			opts: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE},
			want: []specs.LinuxNamespace{mnt}},
		{name: "user namespace refused", opts: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}, err: errInvalid},
		{name: "user namespace NODE is fine", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER, UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}},
			want:         []specs.LinuxNamespace{mnt, ns("network", net), ns("ipc", ipc), ns("uts", uts), ns("pid", "")},
			wantHostname: "pod-host"},
		{name: "unknown mode", opts: &runtime.NamespaceOption{Network: 9}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost()
			h.CgroupV2 = tc.cgroupV2
			r := testRequest()
			r.Sandbox.Privileged = true
			sc(r).NamespaceOptions, sc(r).Privileged = tc.opts, tc.privileged
			if tc.sb != nil {
				tc.sb(&r.Sandbox)
			}
			r.TargetPID = tc.targetPID
			res, err := Generate(h, r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			if !slices.Equal(res.Spec.Linux.Namespaces, tc.want) {
				t.Errorf("namespaces = %v\nwant         %v", res.Spec.Linux.Namespaces, tc.want)
			}
			if res.Spec.Hostname != tc.wantHostname {
				t.Errorf("hostname = %q, want %q", res.Spec.Hostname, tc.wantHostname)
			}
		})
	}
}

func TestSysctls(t *testing.T) {
	cases := []struct {
		name    string
		sysctls map[string]string
		hostNet bool
		hostIPC bool
		err     error
	}{
		{name: "namespaced", sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20"}},
		{name: "net with host network", hostNet: true, sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, err: errInvalid},
		{name: "ipc with host ipc", hostIPC: true, sysctls: map[string]string{"kernel.msgmax": "1"}, err: errInvalid},
		{name: "not namespaced", sysctls: map[string]string{"vm.swappiness": "1"}, err: errInvalid},
		{name: "kernel but not ipc", sysctls: map[string]string{"kernel.panic": "1"}, err: errInvalid},
		{name: "bad name", sysctls: map[string]string{"net..x": "1"}, err: errInvalid},
		{name: "path traversal", sysctls: map[string]string{"net/../../x": "1"}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Sandbox.Sysctls = tc.sysctls
			if tc.hostNet {
				sc(r).NamespaceOptions.Network = runtime.NamespaceMode_NODE
			}
			if tc.hostIPC {
				sc(r).NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
			}
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err == nil && len(res.Spec.Linux.Sysctl) != len(tc.sysctls) {
				t.Fatalf("sysctls = %v", res.Spec.Linux.Sysctl)
			}
		})
	}
}
