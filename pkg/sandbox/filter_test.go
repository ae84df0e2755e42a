package sandbox

import (
	"reflect"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/store"
)

func TestFilterApply(t *testing.T) {
	all := []*store.Sandbox{
		{ID: "abc111", State: store.StateReady, Labels: map[string]string{"app": "web", "tier": "fe"}},
		{ID: "abc222", State: store.StateNotReady, Labels: map[string]string{"app": "web"}},
		{ID: "def333", State: store.StateReady, Labels: map[string]string{"app": "db"}},
	}
	yes, no := true, false
	ids := func(sbs []*store.Sandbox) []string {
		var out []string
		for _, sb := range sbs {
			out = append(out, sb.ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"no filter", Filter{}, []string{"abc111", "abc222", "def333"}},
		{"exact id", Filter{ID: "abc222"}, []string{"abc222"}},
		{"unique prefix", Filter{ID: "def"}, []string{"def333"}},
		{"ambiguous prefix", Filter{ID: "abc"}, nil},
		{"unknown id", Filter{ID: "zzz"}, nil},
		{"ready", Filter{Ready: &yes}, []string{"abc111", "def333"}},
		{"not ready", Filter{Ready: &no}, []string{"abc222"}},
		{"one label", Filter{Labels: map[string]string{"app": "web"}}, []string{"abc111", "abc222"}},
		{"all labels must match", Filter{Labels: map[string]string{"app": "web", "tier": "fe"}}, []string{"abc111"}},
		{"label value differs", Filter{Labels: map[string]string{"app": "cache"}}, nil},
		{"empty value is not absence", Filter{Labels: map[string]string{"tier": ""}}, nil},
		{"combined", Filter{ID: "abc1", Ready: &yes, Labels: map[string]string{"app": "web"}}, []string{"abc111"}},
		{"combined, state excludes", Filter{ID: "abc2", Ready: &yes}, nil},
	}
	for _, tc := range cases {
		if got := ids(tc.f.Apply(all)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSplitSysctlsAndHostname(t *testing.T) {
	c := &Config{Name: "Web", Sysctls: map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "1", "fs.mqueue.msg_max": "20"}}
	netS, ipcS := splitSysctls(c)
	if !reflect.DeepEqual(netS, map[string]string{"net.core.somaxconn": "1024"}) ||
		!reflect.DeepEqual(ipcS, map[string]string{"kernel.shmmax": "1", "fs.mqueue.msg_max": "20"}) {
		t.Errorf("split = %v, %v", netS, ipcS)
	}
	if p := sysctlPath("net.ipv4.conf.eth0.forwarding"); p != "/proc/sys/net/ipv4/conf/eth0/forwarding" {
		t.Errorf("sysctlPath = %s", p)
	}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Name: "p", Hostname: "given"}, "given"},
		{Config{Name: "Web"}, "web"},
		{Config{Name: "not_a_hostname"}, ""},
		{Config{Name: strings.Repeat("a", 62) + "-bcd"}, strings.Repeat("a", 62)},
	} {
		if got := effectiveHostname(&tc.c); got != tc.want {
			t.Errorf("effectiveHostname(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}
