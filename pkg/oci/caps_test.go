package oci

import (
	"slices"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func sortedCaps(names ...string) []string {
	s := newCapSet(names)
	return s.list()
}

func without(list []string, drop ...string) []string {
	var out []string
	for _, c := range list {
		if !slices.Contains(drop, c) {
			out = append(out, c)
		}
	}
	return out
}

func TestCapabilities(t *testing.T) {
	host := testHost().CapabilityBoundingSet
	def := sortedCaps(DefaultCapabilities...)
	cases := []struct {
		name         string
		caps         *runtime.Capability
		privileged   bool
		uid          int64
		wantBounding []string
		wantEff      []string // nil: same as bounding for root, empty for others
		wantAmbient  []string
		warn         bool
		err          error
	}{
		{name: "default set", wantBounding: def},
		{name: "add with and without prefix, any case", caps: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN", "cap_sys_time"}},
			wantBounding: sortedCaps(append([]string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}, DefaultCapabilities...)...)},
		{name: "drop", caps: &runtime.Capability{DropCapabilities: []string{"CHOWN", "CAP_KILL"}},
			wantBounding: without(def, "CAP_CHOWN", "CAP_KILL")},
		{name: "drop wins over add", caps: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"NET_ADMIN"}},
			wantBounding: def},
		{name: "add ALL is the host's bounding set", caps: &runtime.Capability{AddCapabilities: []string{"ALL"}},
			wantBounding: host},
		{name: "add ALL drop one", caps: &runtime.Capability{AddCapabilities: []string{"all"}, DropCapabilities: []string{"SYS_ADMIN"}},
			wantBounding: without(host, "CAP_SYS_ADMIN")},
		{name: "drop ALL then add some", caps: &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}},
			wantBounding: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop ALL", caps: &runtime.Capability{DropCapabilities: []string{"ALL"}}, wantBounding: []string{}},
		{name: "capability the host lacks is not granted", caps: &runtime.Capability{AddCapabilities: []string{"SYS_RESOURCE"}},
			wantBounding: def, warn: true},
		{name: "unknown capability", caps: &runtime.Capability{AddCapabilities: []string{"FLY"}}, err: errInvalid},
		{name: "privileged: all of the host's, caps ignored", privileged: true, caps: &runtime.Capability{DropCapabilities: []string{"ALL"}},
			wantBounding: host},
		{name: "non-root: bounding only", uid: 1000, caps: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}},
			wantBounding: sortedCaps(append([]string{"CAP_NET_ADMIN"}, DefaultCapabilities...)...), wantEff: []string{}},
		{name: "non-root with ambient", uid: 1000, caps: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}, AddAmbientCapabilities: []string{"net_admin"}},
			wantBounding: sortedCaps(append([]string{"CAP_NET_ADMIN"}, DefaultCapabilities...)...), wantEff: []string{"CAP_NET_ADMIN"}, wantAmbient: []string{"CAP_NET_ADMIN"}},
		{name: "ambient outside the set", uid: 1000, caps: &runtime.Capability{AddAmbientCapabilities: []string{"SYS_ADMIN"}}, err: errInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Sandbox.Privileged = true
			s := sc(r)
			s.Capabilities, s.Privileged, s.RunAsUser = tc.caps, tc.privileged, i64(tc.uid)
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			c := res.Spec.Process.Capabilities
			eq := func(a, b []string) bool { return len(a) == 0 && len(b) == 0 || slices.Equal(a, b) }
			if !eq(c.Bounding, tc.wantBounding) {
				t.Errorf("bounding = %v\nwant       %v", c.Bounding, tc.wantBounding)
			}
			wantEff := tc.wantEff
			if wantEff == nil {
				wantEff = tc.wantBounding
			}
			if !eq(c.Effective, wantEff) || !eq(c.Permitted, wantEff) {
				t.Errorf("effective = %v, permitted = %v, want %v", c.Effective, c.Permitted, wantEff)
			}
			if !eq(c.Ambient, tc.wantAmbient) || !eq(c.Inheritable, tc.wantAmbient) {
				t.Errorf("ambient = %v, inheritable = %v, want %v", c.Ambient, c.Inheritable, tc.wantAmbient)
			}
			warned := slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "CAP_SYS_RESOURCE") })
			if warned != tc.warn {
				t.Errorf("warnings = %v", res.Warnings)
			}
		})
	}
}

func TestCapabilitiesFromMask(t *testing.T) {
	// This machine's CapBnd: everything up to CAP_CHECKPOINT_RESTORE but
	// CAP_SYS_RESOURCE.
	got := CapabilitiesFromMask(0x000001fffeffffff)
	if len(got) != 40 || slices.Contains(got, "CAP_SYS_RESOURCE") || got[40-1] != "CAP_CHECKPOINT_RESTORE" {
		t.Fatalf("caps = %v", got)
	}
	if !slices.Equal(got, testHost().CapabilityBoundingSet) {
		t.Fatalf("caps = %v, want %v", got, testHost().CapabilityBoundingSet)
	}
}
