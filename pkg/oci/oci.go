// Package oci turns a CRI ContainerConfig, the pod sandbox it runs in and
// its image config into an OCI runtime spec (config.json) for runc or crun.
//
// Generate is a pure function of its inputs: it reads only the image's own
// /etc/passwd and /etc/group (securely, inside the image rootfs) and, through
// hooks in Host, device nodes and Localhost seccomp profiles. It creates,
// mounts and checks nothing; what the caller must do on the host before
// starting the container (e.g. create missing bind-mount sources) is listed
// in the Result.
//
// The CRI ContainerConfig is taken as is (k8s.io/cri-api types): it is the
// request kubelet sent, rich and versioned, and mirroring it field by field
// in a plain struct would duplicate it without making anything simpler.
// Everything crid itself knows (the sandbox, the host) comes in plain structs.
package oci

import (
	"fmt"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// SpecVersion is the ociVersion crid writes: the oldest that holds every
// field it sets. Runtimes check it (crun 1.8 refuses 1.2.0 and later), so
// the library's own newer version would lock out older runtimes.
const SpecVersion = "1.1.0"

// Annotations crid sets on every container spec, like containerd's CRI
// plugin does, so that OCI hooks and tools can tell what a bundle is.
const (
	AnnotationContainerType           = "io.kubernetes.cri.container-type"
	AnnotationSandboxID               = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName             = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace        = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID              = "io.kubernetes.cri.sandbox-uid"
	AnnotationContainerName           = "io.kubernetes.cri.container-name"
	AnnotationImageName               = "io.kubernetes.cri.image-name"
	ContainerTypeContainer            = "container"
	defaultRootPath                   = "rootfs"
	defaultPathEnv                    = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	defaultNofile              uint64 = 1048576
)

// SandboxInfo is what a container needs from its pod sandbox.
//
// Namespace paths: an empty path means the pod shares the host's namespace,
// so a container asking for the POD namespace gets the host's. The PID
// namespace is the exception: POD needs PIDNSPath or InfraPID.
type SandboxInfo struct {
	ID, Name, Namespace, UID string
	Hostname                 string // the pod's hostname ("" = Host.Hostname)

	NetNSPath string // pinned network namespace
	IPCNSPath string // pinned IPC namespace
	UTSNSPath string // pinned UTS namespace
	PIDNSPath string // pinned PID namespace; "" = /proc/<InfraPID>/ns/pid
	InfraPID  int    // the infra process, holder of the pod's PID namespace

	ResolvConfPath string // the pod's /etc/resolv.conf ("" = not mounted)
	HostsPath      string // the pod's /etc/hosts ("" = not mounted)
	HostnamePath   string // the pod's /etc/hostname ("" = not mounted)
	ShmPath        string // the pod's /dev/shm tmpfs ("" = a private tmpfs)

	CgroupParent string            // from PodSandboxConfig.linux.cgroup_parent
	Privileged   bool              // the pod allows privileged containers
	Sysctls      map[string]string // the pod's sysctls (PodSandboxConfig.linux.sysctls)
}

// ImageInput is the container's image.
type ImageInput struct {
	Config ocispec.ImageConfig
	// Rootfs is a directory holding the image's file system (e.g. the
	// container's overlay rootfs, mounted), used only to read /etc/passwd and
	// /etc/group. The image is untrusted: lookups stay inside Rootfs whatever
	// symlinks it holds. "" = the image has no such files.
	Rootfs string
	// Name is the image name for the image-name annotation; "" = the CRI
	// config's user_specified_image, else its image.
	Name string
}

// Request is one container to generate a spec for.
type Request struct {
	ID      string // the container id
	Config  *runtime.ContainerConfig
	Sandbox SandboxInfo
	Image   ImageInput
	// TargetPID is the init pid of the container named by
	// NamespaceOption.target_id, resolved by the caller; needed for PID
	// namespace mode TARGET only.
	TargetPID int
	// RootPath is spec.root.path, relative to the bundle; "" = "rootfs".
	RootPath string
}

// Host describes crid's host and its own privileges. DetectHost fills it.
type Host struct {
	// CapabilityBoundingSet is crid's own bounding set ("CAP_CHOWN", ...):
	// "all capabilities" (privileged, add ALL) means these, and every
	// capability set is intersected with it.
	CapabilityBoundingSet []string
	// HasCapSysResource: crid may raise rlimits and lower oom_score_adj.
	HasCapSysResource bool
	// CurrentOOMScoreAdj is crid's own oom_score_adj; without
	// CAP_SYS_RESOURCE a container cannot go below it.
	CurrentOOMScoreAdj int
	// NofileHardLimit is crid's RLIMIT_NOFILE hard limit (0 = unknown: no clamp).
	NofileHardLimit uint64

	CgroupDriver   string // "cgroupfs" (default) or "systemd"
	CgroupV2       bool   // the OCI runtime manages cgroup v2 (unified mode)
	SwapAccounting bool   // the memory controller can limit swap
	Hugetlb        bool   // the hugetlb controller is usable by the runtime

	// RecursiveReadOnlyMounts: the OCI runtime understands "rro".
	RecursiveReadOnlyMounts bool

	AppArmorEnabled bool
	// AppArmorDefaultProfile is the loaded profile RuntimeDefault maps to;
	// "" = RuntimeDefault runs unconfined.
	AppArmorDefaultProfile string

	// SeccompDefault replaces the built-in RuntimeDefault profile when set.
	SeccompDefault *specs.LinuxSeccomp
	// SeccompUnsetIsDefault applies RuntimeDefault when the CRI config names
	// no seccomp profile at all (CRI default: unconfined).
	SeccompUnsetIsDefault bool
	// ReadFile reads Localhost seccomp profiles; nil = os.ReadFile, capped.
	ReadFile func(path string) ([]byte, error)

	// Hostname is the node's hostname, used for HOSTNAME when the pod has none.
	Hostname string
	// HostDevices are the host's device nodes, all given to privileged
	// containers (see HostDevices).
	HostDevices []specs.LinuxDevice
	// LookupDevice returns the device nodes at a CRI device's host path (a
	// directory yields the nodes beneath it, paths kept as on the host);
	// nil = DevicesFromPath.
	LookupDevice func(hostPath string) ([]specs.LinuxDevice, error)
}

// Result is a generated spec and what the caller must do before using it.
type Result struct {
	Spec *specs.Spec
	// HostPaths are the host paths of the CRI bind mounts. Kubelet expects
	// missing ones to be created as directories; the caller does that.
	HostPaths []string
	// Propagation lists CRI mounts whose requested propagation needs the
	// host mount to be shared ("rshared") or shared or slave ("rslave");
	// the caller may verify it against the host's mountinfo.
	Propagation []PropagationNeed
	// Warnings name inputs that were adjusted or ignored (capabilities the
	// host lacks, cgroup v2 keys on cgroup v1, ...), for the caller to log.
	Warnings []string
}

// PropagationNeed is a host path whose mount must propagate as Mode.
type PropagationNeed struct {
	HostPath string
	Mode     string // "rshared" or "rslave"
}

// gen carries one generation.
type gen struct {
	req  *Request
	host *Host
	cfg  *runtime.ContainerConfig
	sc   *runtime.LinuxContainerSecurityContext
	spec *specs.Spec
	res  *Result
}

func (g *gen) warnf(format string, args ...any) {
	g.res.Warnings = append(g.res.Warnings, fmt.Sprintf(format, args...))
}

// invalid returns an InvalidArgument error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// Generate builds the OCI runtime spec of container req.ID. Errors wrap
// errdefs.ErrInvalidArgument for requests that cannot be honoured as given
// and errdefs.ErrFailedPrecondition for missing sandbox state.
func Generate(host *Host, req *Request) (*Result, error) {
	if req == nil || req.Config == nil {
		return nil, invalid("container config is required")
	}
	if host == nil {
		host = &Host{}
	}
	if req.ID == "" {
		return nil, invalid("container id is required")
	}
	g := &gen{
		req:  req,
		host: host,
		cfg:  req.Config,
		sc:   req.Config.GetLinux().GetSecurityContext(),
		res:  &Result{},
	}
	if g.sc.GetPrivileged() && !req.Sandbox.Privileged {
		return nil, invalid("container %q is privileged but its pod sandbox %q does not allow privileged containers",
			req.Config.GetMetadata().GetName(), req.Sandbox.ID)
	}
	rootPath := req.RootPath
	if rootPath == "" {
		rootPath = defaultRootPath
	}
	g.spec = &specs.Spec{
		Version: SpecVersion,
		Root:    &specs.Root{Path: rootPath, Readonly: g.sc.GetReadonlyRootfs()},
		Process: &specs.Process{Terminal: g.cfg.GetTty()},
		Linux:   &specs.Linux{Resources: &specs.LinuxResources{}},
	}
	steps := []struct {
		what string
		fn   func() error
	}{
		{"process args", g.args},
		{"user", g.user},
		{"environment", g.env},
		{"working dir", g.cwd},
		{"namespaces", g.namespaces},
		{"sysctls", g.sysctls},
		{"mounts", g.mounts},
		{"devices", g.devices},
		{"capabilities", g.capabilities},
		{"masked paths", g.maskedPaths},
		{"seccomp", g.seccomp},
		{"apparmor", g.apparmor},
		{"resources", g.resources},
		{"rlimits", g.rlimits},
		{"cgroups path", g.cgroupsPath},
		{"annotations", g.annotations},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("container %q (%s): %s: %w", req.Config.GetMetadata().GetName(), req.ID, s.what, err)
		}
	}
	g.spec.Process.NoNewPrivileges = g.sc.GetNoNewPrivs()
	g.res.Spec = g.spec
	return g.res, nil
}

// annotations sets the io.kubernetes.cri.* annotations.
func (g *gen) annotations() error {
	sb := g.req.Sandbox
	image := g.req.Image.Name
	if image == "" {
		image = g.cfg.GetImage().GetUserSpecifiedImage()
	}
	if image == "" {
		image = g.cfg.GetImage().GetImage()
	}
	g.spec.Annotations = map[string]string{
		AnnotationContainerType:    ContainerTypeContainer,
		AnnotationSandboxID:        sb.ID,
		AnnotationSandboxName:      sb.Name,
		AnnotationSandboxNamespace: sb.Namespace,
		AnnotationSandboxUID:       sb.UID,
		AnnotationContainerName:    g.cfg.GetMetadata().GetName(),
		AnnotationImageName:        image,
	}
	return nil
}

// cgroupsPath places the container under the pod's cgroup parent, named
// like the pod's infra cgroup (pkg/sandbox): a parent ending in ".slice" is
// a systemd slice and gives runc's "slice:crid:<id>" form (unit
// crid-<id>.scope), anything else the cgroupfs path <parent>/crid-<id>.
// Without a parent the container goes to /crid/<id> (system.slice with
// the systemd driver).
func (g *gen) cgroupsPath() error {
	parent := g.req.Sandbox.CgroupParent
	id := g.req.ID
	switch {
	case strings.HasSuffix(path.Base(parent), ".slice"):
		g.spec.Linux.CgroupsPath = path.Base(parent) + ":crid:" + id
	case parent != "":
		if g.host.CgroupDriver == "systemd" {
			return invalid("cgroup parent %q is not a systemd slice (the cgroup driver is systemd)", parent)
		}
		g.spec.Linux.CgroupsPath = path.Join("/", parent, "crid-"+id)
	case g.host.CgroupDriver == "systemd":
		g.spec.Linux.CgroupsPath = "system.slice:crid:" + id
	default:
		g.spec.Linux.CgroupsPath = "/crid/" + id
	}
	return nil
}
