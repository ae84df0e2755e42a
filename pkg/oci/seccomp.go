package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// deniedSyscalls is the built-in RuntimeDefault profile: syscalls refused
// with EPERM unless the container holds the capability that names the group
// ("" = refused always). It is the deny side of Docker's default profile
// (moby/profiles/seccomp), which is an allowlist of ~350 syscalls: crid
// allows by default and denies what Docker does not allow, so a new syscall
// is allowed until listed here. Docker's rules kept as in its profile:
// namespace creation, mounts and the new mount API need CAP_SYS_ADMIN;
// kernel keyrings, io_uring, obsolete and kernel-module calls are refused;
// clone3 fails with ENOSYS (its flags cannot be inspected) so that libc
// falls back to clone, whose namespace flags are checked.
var deniedSyscalls = []struct {
	cap   string
	names []string
}{
	{"", []string{
		"add_key", "keyctl", "request_key", // kernel keyrings are not namespaced
		"create_module", "get_kernel_syms", "query_module", "nfsservctl",
		"uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
	}},
	{"CAP_SYS_ADMIN", []string{
		"mount", "umount", "umount2", "pivot_root", "setns", "unshare",
		"swapon", "swapoff", "quotactl", "quotactl_fd", "fanotify_init",
		"fsconfig", "fsmount", "fsopen", "fspick", "open_tree", "move_mount",
		"mount_setattr", "name_to_handle_at", "setdomainname", "sethostname",
		"lookup_dcookie",
	}},
	{"CAP_SYS_MODULE", []string{"init_module", "finit_module", "delete_module"}},
	{"CAP_SYS_BOOT", []string{"reboot", "kexec_load", "kexec_file_load"}},
	{"CAP_SYS_TIME", []string{"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64"}},
	{"CAP_SYS_PTRACE", []string{"kcmp", "userfaultfd"}},
	{"CAP_SYS_RAWIO", []string{"iopl", "ioperm"}},
	{"CAP_SYS_PACCT", []string{"acct"}},
	{"CAP_SYS_TTY_CONFIG", []string{"vhangup"}},
	{"CAP_DAC_READ_SEARCH", []string{"open_by_handle_at"}},
}

// Syscalls Docker allows with either of two capabilities.
var deniedSyscallsEither = []struct {
	caps  [2]string
	names []string
}{
	{[2]string{"CAP_SYS_ADMIN", "CAP_BPF"}, []string{"bpf"}},
	{[2]string{"CAP_SYS_ADMIN", "CAP_PERFMON"}, []string{"perf_event_open"}},
	{[2]string{"CAP_SYS_ADMIN", "CAP_SYSLOG"}, []string{"syslog"}},
}

// cloneNamespaceFlags are clone(2) flags that create namespaces.
var cloneNamespaceFlags = []uint64{
	0x00020000, // CLONE_NEWNS
	0x02000000, // CLONE_NEWCGROUP
	0x04000000, // CLONE_NEWUTS
	0x08000000, // CLONE_NEWIPC
	0x10000000, // CLONE_NEWUSER
	0x20000000, // CLONE_NEWPID
	0x40000000, // CLONE_NEWNET
}

// DefaultSeccompProfile is crid's RuntimeDefault seccomp profile for a
// container whose bounding capability set is caps (see deniedSyscalls).
func DefaultSeccompProfile(caps []string) *specs.LinuxSeccomp {
	has := func(c string) bool { return slices.Contains(caps, c) }
	eperm, enosys := uint(errnoEPERM), uint(errnoENOSYS)
	deny := func(names ...string) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: names, Action: specs.ActErrno, ErrnoRet: &eperm}
	}
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: nativeArches(),
	}
	for _, d := range deniedSyscalls {
		if d.cap == "" || !has(d.cap) {
			p.Syscalls = append(p.Syscalls, deny(d.names...))
		}
	}
	for _, d := range deniedSyscallsEither {
		if !has(d.caps[0]) && !has(d.caps[1]) {
			p.Syscalls = append(p.Syscalls, deny(d.names...))
		}
	}
	if !has("CAP_SYS_ADMIN") {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})
		// The flags are clone's first argument (second on s390).
		idx := uint(0)
		if strings.HasPrefix(goruntime.GOARCH, "s390") {
			idx = 1
		}
		for _, f := range cloneNamespaceFlags {
			r := deny("clone")
			r.Args = []specs.LinuxSeccompArg{{Index: idx, Value: f, ValueTwo: f, Op: specs.OpMaskedEqual}}
			p.Syscalls = append(p.Syscalls, r)
		}
	}
	return p
}

// nativeArches are the syscall ABIs a process on this architecture can use;
// filters must cover all of them.
func nativeArches() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "386":
		return []specs.Arch{specs.ArchX86}
	case "arm":
		return []specs.Arch{specs.ArchARM}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	case "loong64":
		return []specs.Arch{specs.ArchLOONGARCH64}
	}
	return nil
}

// seccompFile is a seccomp profile as found on disk: the OCI form, or
// Docker's (archMap, "name", includes/excludes).
type seccompFile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []seccompArchMap         `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []seccompRule            `json:"syscalls,omitempty"`
}

type seccompArchMap struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

type seccompRule struct {
	Name     string                   `json:"name,omitempty"`
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Includes *seccompFilter           `json:"includes,omitempty"`
	Excludes *seccompFilter           `json:"excludes,omitempty"`
}

type seccompFilter struct {
	Arches    []string `json:"arches,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

// LoadSeccompProfile parses a JSON seccomp profile, in the OCI form or
// Docker's, for a container whose bounding capability set is caps. Docker's
// conditional rules are resolved here: includes/excludes by capability and
// by architecture (runtime.GOARCH names); minKernel is not checked (the rule
// applies).
func LoadSeccompProfile(data []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var f seccompFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, invalid("malformed seccomp profile: %v", err)
	}
	if !slices.Contains(seccompActions, f.DefaultAction) {
		return nil, invalid("seccomp profile defaultAction %q is not valid", f.DefaultAction)
	}
	p := &specs.LinuxSeccomp{
		DefaultAction:    f.DefaultAction,
		DefaultErrnoRet:  f.DefaultErrnoRet,
		Architectures:    f.Architectures,
		Flags:            f.Flags,
		ListenerPath:     f.ListenerPath,
		ListenerMetadata: f.ListenerMetadata,
	}
	if len(p.Architectures) == 0 && len(f.ArchMap) > 0 {
		native := nativeArches()
		for _, m := range f.ArchMap {
			if len(native) > 0 && m.Arch == native[0] {
				p.Architectures = append([]specs.Arch{m.Arch}, m.SubArches...)
			}
		}
	}
	for _, a := range p.Architectures {
		if !strings.HasPrefix(string(a), "SCMP_ARCH_") {
			return nil, invalid("seccomp architecture %q is not valid", a)
		}
	}
	for i, r := range f.Syscalls {
		names := r.Names
		if r.Name != "" {
			names = append([]string{r.Name}, names...)
		}
		if len(names) == 0 {
			return nil, invalid("seccomp rule %d names no syscall", i)
		}
		if !slices.Contains(seccompActions, r.Action) {
			return nil, invalid("seccomp rule %d (%s): action %q is not valid", i, names[0], r.Action)
		}
		if !r.applies(caps) {
			continue
		}
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: names, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
	}
	return p, nil
}

// applies resolves Docker's includes/excludes conditions.
func (r *seccompRule) applies(caps []string) bool {
	arch := goruntime.GOARCH
	if in := r.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
			return false
		}
		for _, c := range in.Caps {
			if !slices.Contains(caps, c) {
				return false
			}
		}
	}
	if ex := r.Excludes; ex != nil {
		if slices.Contains(ex.Arches, arch) {
			return false
		}
		for _, c := range ex.Caps {
			if slices.Contains(caps, c) {
				return false
			}
		}
	}
	return true
}

// cloneSeccomp deep-copies a profile through JSON.
func cloneSeccomp(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	data, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("marshal seccomp profile: %v", err))
	}
	var out specs.LinuxSeccomp
	if err := json.Unmarshal(data, &out); err != nil {
		panic(fmt.Sprintf("unmarshal seccomp profile: %v", err))
	}
	return &out
}
