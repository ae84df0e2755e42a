package netns

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkNetnsNew measures creating and removing one pinned namespace.
func BenchmarkNetnsNew(b *testing.B) {
	requireRoot(b)
	pinDir := b.TempDir()
	i := 0
	for b.Loop() {
		ns, err := New(pinDir, fmt.Sprintf("b%d", i))
		if err != nil {
			b.Fatal(err)
		}
		if err := ns.Remove(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkNetnsAndCNI measures a pod's network lifecycle: pinned netns +
// CNI ADD (reported as add-ms, the RunPodSandbox share; budget ~38 ms for
// `ip netns add` + bridge ADD), then DEL + remove (del-ms).
// Variants: the bridge alone; bridge + portmap + loopback (a typical
// conflist); bridge + portmap with lo raised by New instead of a plugin.
func BenchmarkNetnsAndCNI(b *testing.B) {
	for _, v := range []struct {
		name     string
		plugins  string
		loopback bool
	}{
		{name: "bridge", plugins: ``},
		{name: "bridge+portmap+loopback", plugins: `,{"type":"portmap","capabilities":{"portMappings":true}},{"type":"loopback"}`},
		{name: "bridge+portmap+WithLoopbackUp", plugins: `,{"type":"portmap","capabilities":{"portMappings":true}}`, loopback: true},
	} {
		b.Run(v.name, func(b *testing.B) {
			n := newTestNet(b)
			n.writeConf(b, "10-bench.conflist", []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
				{"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,
				 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}%s]}`,
				n.name, n.bridge, n.dataDir, n.subnet, v.plugins)))
			m := n.manager(b)
			var opts []Option
			if v.loopback {
				opts = append(opts, WithLoopbackUp())
			}
			ctx := context.Background()
			var add, del time.Duration
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("bench-%d", i)
				i++
				t0 := time.Now()
				ns, err := New(n.pinDir, id, opts...)
				if err != nil {
					b.Fatal(err)
				}
				pn := PodNetwork{ID: id, NetNSPath: ns.Path(), PodName: id, PodNamespace: "bench", PodUID: id}
				if _, err := m.Setup(ctx, pn); err != nil {
					_ = ns.Remove()
					b.Fatal(err)
				}
				t1 := time.Now()
				terr := m.Teardown(ctx, pn)
				rerr := ns.Remove()
				del += time.Since(t1)
				add += t1.Sub(t0)
				if terr != nil || rerr != nil {
					b.Fatal(terr, rerr)
				}
			}
			b.ReportMetric(float64(add.Microseconds())/1000/float64(i), "add-ms")
			b.ReportMetric(float64(del.Microseconds())/1000/float64(i), "del-ms")
		})
	}
}
