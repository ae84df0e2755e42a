package oci

import (
	"fmt"
	"os"
	"path"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// DefaultMaskedPaths and DefaultReadonlyPaths are containerd's defaults
// (and kubelet's for the Default procMount).
var (
	DefaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// maskedPaths: none for a privileged container; otherwise the CRI lists
// when given, else the defaults. kubelet always sends the lists for the
// Default procMount; for Unmasked it sends empty lists, which protobuf cannot
// tell from absent ones, so over gRPC Unmasked gets the defaults (kubelet
// allows Unmasked only with user namespaces, which crid does not support).
// A caller in-process may pass an empty non-nil list to mean "none".
func (g *gen) maskedPaths() error {
	if g.sc.GetPrivileged() {
		return nil
	}
	masked, ro := g.sc.GetMaskedPaths(), g.sc.GetReadonlyPaths()
	if masked == nil {
		masked = DefaultMaskedPaths
	}
	if ro == nil {
		ro = DefaultReadonlyPaths
	}
	for _, l := range [][]string{masked, ro} {
		for _, p := range l {
			if !path.IsAbs(p) {
				return invalid("masked or read-only path %q is not absolute", p)
			}
		}
	}
	g.spec.Linux.MaskedPaths = append([]string{}, masked...)
	g.spec.Linux.ReadonlyPaths = append([]string{}, ro...)
	return nil
}

// Deprecated CRI profile strings.
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// legacyProfile turns a deprecated profile string into a SecurityProfile;
// "" is unset (nil).
func legacyProfile(s string) (*runtime.SecurityProfile, error) {
	switch {
	case s == "":
		return nil, nil
	case s == profileRuntimeDefault || s == profileDockerDefault:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case s == profileUnconfined:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(s, profileLocalhost):
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost,
			LocalhostRef: strings.TrimPrefix(s, profileLocalhost)}, nil
	}
	return nil, invalid("profile %q is not runtime/default, unconfined or localhost/<name>", s)
}

// apparmor: privileged containers are unconfined (CRI). RuntimeDefault is
// Host.AppArmorDefaultProfile when AppArmor is on and crid loaded one, else
// unconfined; Localhost names a profile loaded on the node and needs
// AppArmor; Unconfined sets no profile.
func (g *gen) apparmor() error {
	if g.sc.GetPrivileged() {
		return nil
	}
	sp := g.sc.GetApparmor()
	if sp == nil {
		var err error
		if sp, err = legacyProfile(g.sc.GetApparmorProfile()); err != nil { //nolint:staticcheck // deprecated field still sent by old kubelets
			return err
		}
	}
	switch sp.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault:
		if g.host.AppArmorEnabled {
			g.spec.Process.ApparmorProfile = g.host.AppArmorDefaultProfile
		}
	case runtime.SecurityProfile_Unconfined:
	case runtime.SecurityProfile_Localhost:
		name := strings.TrimPrefix(sp.GetLocalhostRef(), profileLocalhost)
		if name == "" {
			return invalid("apparmor profile type Localhost needs a profile name")
		}
		if !g.host.AppArmorEnabled {
			return fmt.Errorf("apparmor profile %q requested but AppArmor is not enabled on this host: %w", name, errdefs.ErrFailedPrecondition)
		}
		g.spec.Process.ApparmorProfile = name
	default:
		return invalid("apparmor profile type %d is unknown", sp.GetProfileType())
	}
	return nil
}

// seccomp: privileged containers are unconfined (CRI). RuntimeDefault is
// Host.SeccompDefault or DefaultSeccompProfile; Localhost loads the JSON
// profile (OCI or Docker format) at the absolute path localhost_ref;
// Unconfined and unset (CRI's default) set no filter.
func (g *gen) seccomp() error {
	if g.sc.GetPrivileged() {
		return nil
	}
	sp := g.sc.GetSeccomp()
	if sp == nil {
		var err error
		if sp, err = legacyProfile(g.sc.GetSeccompProfilePath()); err != nil { //nolint:staticcheck // deprecated field still sent by old kubelets
			return err
		}
		if sp == nil {
			if !g.host.SeccompUnsetIsDefault {
				return nil
			}
			sp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
		}
	}
	bounding := g.spec.Process.Capabilities.Bounding
	switch sp.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault:
		if g.host.SeccompDefault != nil {
			g.spec.Linux.Seccomp = cloneSeccomp(g.host.SeccompDefault)
		} else {
			g.spec.Linux.Seccomp = DefaultSeccompProfile(bounding)
		}
	case runtime.SecurityProfile_Unconfined:
	case runtime.SecurityProfile_Localhost:
		p := sp.GetLocalhostRef()
		if !path.IsAbs(p) {
			return invalid("seccomp profile path %q is not absolute", p)
		}
		read := g.host.ReadFile
		if read == nil {
			read = readProfile
		}
		data, err := read(p)
		if err != nil {
			return fmt.Errorf("load seccomp profile %s: %w: %w", p, err, errdefs.ErrInvalidArgument)
		}
		prof, err := LoadSeccompProfile(data, bounding)
		if err != nil {
			return fmt.Errorf("seccomp profile %s: %w", p, err)
		}
		g.spec.Linux.Seccomp = prof
	default:
		return invalid("seccomp profile type %d is unknown", sp.GetProfileType())
	}
	return nil
}

// readProfile reads a seccomp profile from the host, at most 1 MiB.
func readProfile(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 1<<20 {
		return nil, fmt.Errorf("not a regular file of at most 1 MiB")
	}
	return os.ReadFile(p)
}
