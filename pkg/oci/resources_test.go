package oci

import (
	"maps"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResources(t *testing.T) {
	p := func(v int64) *int64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	cases := []struct {
		name     string
		r        *runtime.LinuxContainerResources
		host     func(*Host)
		wantCPU  *specs.LinuxCPU
		wantMem  *specs.LinuxMemory
		wantHuge []specs.LinuxHugepageLimit
		wantUni  map[string]string
		wantOOM  *int
		warn     bool
		err      error
	}{
		{name: "none"},
		{name: "cpu", r: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0-1,3", CpusetMems: "0"},
			wantCPU: &specs.LinuxCPU{Period: u(100000), Quota: p(50000), Shares: u(512), Cpus: "0-1,3", Mems: "0"}, wantOOM: intp(0)},
		{name: "bad cpuset", r: &runtime.LinuxContainerResources{CpusetCpus: "0-1;3"}, err: errInvalid},
		{name: "negative shares", r: &runtime.LinuxContainerResources{CpuShares: -2}, err: errInvalid},
		{name: "memory: swap equals the limit", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
			wantMem: &specs.LinuxMemory{Limit: p(64 << 20), Swap: p(64 << 20)}, wantOOM: intp(0)},
		{name: "memory with explicit swap", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 128 << 20},
			wantMem: &specs.LinuxMemory{Limit: p(64 << 20), Swap: p(128 << 20)}, wantOOM: intp(0)},
		{name: "memory with unlimited swap", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: -1},
			wantMem: &specs.LinuxMemory{Limit: p(64 << 20), Swap: p(-1)}, wantOOM: intp(0)},
		{name: "no swap accounting: limit only", host: func(h *Host) { h.SwapAccounting = false }, r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
			wantMem: &specs.LinuxMemory{Limit: p(64 << 20)}, wantOOM: intp(0)},
		{name: "no swap accounting: explicit swap warned", host: func(h *Host) { h.SwapAccounting = false },
			r:       &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 96 << 20},
			wantMem: &specs.LinuxMemory{Limit: p(64 << 20)}, wantOOM: intp(0), warn: true},
		{name: "negative memory", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: -5}, err: errInvalid},
		{name: "hugepages", host: func(h *Host) { h.Hugetlb = true },
			r:        &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}},
			wantHuge: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}, wantOOM: intp(0)},
		{name: "hugepages without hugetlb: warned",
			r:       &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}},
			wantOOM: intp(0), warn: true},
		{name: "bad page size", host: func(h *Host) { h.Hugetlb = true },
			r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2mb"}}}, err: errInvalid},
		{name: "unified on cgroup v2", host: func(h *Host) { h.CgroupV2 = true },
			r:       &runtime.LinuxContainerResources{Unified: map[string]string{"memory.high": "1000000"}},
			wantUni: map[string]string{"memory.high": "1000000"}, wantOOM: intp(0)},
		{name: "unified on cgroup v1: warned",
			r:       &runtime.LinuxContainerResources{Unified: map[string]string{"memory.high": "1000000"}},
			wantOOM: intp(0), warn: true},
		{name: "oom_score_adj kept", r: &runtime.LinuxContainerResources{OomScoreAdj: 1000}, wantOOM: intp(1000)},
		{name: "oom_score_adj raised to crid's without CAP_SYS_RESOURCE", host: func(h *Host) { h.CurrentOOMScoreAdj = -500 },
			r: &runtime.LinuxContainerResources{OomScoreAdj: -998}, wantOOM: intp(-500), warn: true},
		{name: "oom_score_adj below crid's with CAP_SYS_RESOURCE", host: func(h *Host) { h.CurrentOOMScoreAdj, h.HasCapSysResource = -500, true },
			r: &runtime.LinuxContainerResources{OomScoreAdj: -998}, wantOOM: intp(-998)},
		{name: "oom_score_adj out of range", r: &runtime.LinuxContainerResources{OomScoreAdj: 1001}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost()
			if tc.host != nil {
				tc.host(h)
			}
			r := testRequest()
			r.Config.Linux.Resources = tc.r
			res, err := Generate(h, r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			lr := res.Spec.Linux.Resources
			if !jsonEqual(lr.CPU, tc.wantCPU) || !jsonEqual(lr.Memory, tc.wantMem) ||
				!slices.Equal(lr.HugepageLimits, tc.wantHuge) || !maps.Equal(lr.Unified, tc.wantUni) {
				t.Errorf("resources = %s", mustJSON(lr))
			}
			if !jsonEqual(res.Spec.Process.OOMScoreAdj, tc.wantOOM) {
				t.Errorf("oom_score_adj = %v, want %v", mustJSON(res.Spec.Process.OOMScoreAdj), mustJSON(tc.wantOOM))
			}
			if (len(res.Warnings) > 0) != tc.warn {
				t.Errorf("warnings = %v", res.Warnings)
			}
		})
	}
}

func intp(v int) *int { return &v }

func TestDevices(t *testing.T) {
	maj := func(v int64) *int64 { return &v }
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	cases := []struct {
		name      string
		devices   []*runtime.Device
		wantPaths []string
		wantRules []specs.LinuxDeviceCgroup
		err       error
	}{
		{name: "none: deny all", wantRules: []specs.LinuxDeviceCgroup{deny}},
		{name: "one device renamed", devices: []*runtime.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/myfuse", Permissions: "rw"}},
			wantPaths: []string{"/dev/myfuse"},
			wantRules: []specs.LinuxDeviceCgroup{deny, {Allow: true, Type: "c", Major: maj(10), Minor: maj(229), Access: "rw"}}},
		{name: "default permissions", devices: []*runtime.Device{{HostPath: "/dev/kvm", ContainerPath: "/dev/kvm"}},
			wantPaths: []string{"/dev/kvm"},
			wantRules: []specs.LinuxDeviceCgroup{deny, {Allow: true, Type: "c", Major: maj(10), Minor: maj(232), Access: "rwm"}}},
		{name: "directory of devices", devices: []*runtime.Device{{HostPath: "/dev/snd", ContainerPath: "/dev/audio", Permissions: "r"}},
			wantPaths: []string{"/dev/audio/controlC0", "/dev/audio/timer"},
			wantRules: []specs.LinuxDeviceCgroup{deny, {Allow: true, Type: "c", Major: maj(116), Minor: maj(0), Access: "r"}, {Allow: true, Type: "c", Major: maj(116), Minor: maj(33), Access: "r"}}},
		{name: "missing device", devices: []*runtime.Device{{HostPath: "/dev/nope", ContainerPath: "/dev/nope"}}, err: errInvalid},
		{name: "bad permissions", devices: []*runtime.Device{{HostPath: "/dev/kvm", ContainerPath: "/dev/kvm", Permissions: "rwx"}}, err: errInvalid},
		{name: "relative path", devices: []*runtime.Device{{HostPath: "dev/kvm", ContainerPath: "/dev/kvm"}}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Config.Devices = tc.devices
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			var paths []string
			for _, d := range res.Spec.Linux.Devices {
				paths = append(paths, d.Path)
			}
			if !slices.Equal(paths, tc.wantPaths) {
				t.Errorf("devices = %v, want %v", paths, tc.wantPaths)
			}
			if !jsonEqual(res.Spec.Linux.Resources.Devices, tc.wantRules) {
				t.Errorf("rules = %s", mustJSON(res.Spec.Linux.Resources.Devices))
			}
		})
	}
}

func TestCgroupsPath(t *testing.T) {
	cases := []struct {
		name, driver, parent, want string
		err                        error
	}{
		{name: "cgroupfs parent", parent: "/kubepods/besteffort/pod1", want: "/kubepods/besteffort/pod1/crid-c1"},
		{name: "systemd slice", driver: "systemd", parent: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice",
			want: "kubepods-besteffort-pod1.slice:crid:c1"},
		{name: "slice with the cgroupfs driver still a slice", parent: "kubepods-pod1.slice", want: "kubepods-pod1.slice:crid:c1"},
		{name: "systemd driver, non-slice parent", driver: "systemd", parent: "/kubepods/pod1", err: errInvalid},
		{name: "relative cgroupfs parent", parent: "kubepods/pod1", want: "/kubepods/pod1/crid-c1"},
		{name: "no parent, cgroupfs", want: "/crid/c1"},
		{name: "no parent, systemd", driver: "systemd", want: "system.slice:crid:c1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost()
			h.CgroupDriver = tc.driver
			r := testRequest()
			r.Sandbox.CgroupParent = tc.parent
			res, err := Generate(h, r)
			wantErr(t, err, tc.err)
			if err == nil && res.Spec.Linux.CgroupsPath != tc.want {
				t.Fatalf("cgroups path = %q, want %q", res.Spec.Linux.CgroupsPath, tc.want)
			}
		})
	}
}
