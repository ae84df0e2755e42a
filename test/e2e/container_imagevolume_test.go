package e2e

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
)

// TestImageVolumes mounts images into a container (CRI mounts that name an
// image, kubelet's image volumes): a multi-layer image shows its merged
// tree (whiteouts applied), read-only; a sub path mounts a directory of an
// image; writable ones and missing sub paths are refused; nothing stays
// mounted after removal.
func TestImageVolumes(t *testing.T) {
	e := newCtrEnv(t)
	ml, err := testimage.MultiLayer(false)
	if err != nil {
		t.Fatal(err)
	}
	e.reg.Push(t, "crid-test/multilayer", ml, "latest")
	multilayer := e.reg.Host + "/crid-test/multilayer:latest"
	pull(t, e.d, multilayer, nil)
	busybox := e.image("busybox")
	p := e.pod("imgvol", nil)

	volume := func(path, image, sub string, readonly bool) *runtime.Mount {
		return &runtime.Mount{ContainerPath: path, Readonly: readonly, Image: &runtime.ImageSpec{Image: image}, ImageSubPath: sub}
	}
	cfg := ctrConfig("reader", busybox, sh(`cat /vol/data/top /vol/data/keep /sub/visible; ls /vol/data;
		test -e /vol/data/gone && echo GONE-VISIBLE; test -e /sub/hidden && echo OPAQUE-BROKEN;
		touch /vol/data/new 2>/dev/null && echo WROTE; echo end`)...)
	cfg.Mounts = []*runtime.Mount{volume("/vol", multilayer, "", true), volume("/sub", multilayer, "opq", true)}
	out := p.output(cfg)
	for _, want := range []string{"top layer", "kept", "visible", "end"} {
		if !strings.Contains(out, want) {
			t.Errorf("image volume output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"GONE-VISIBLE", "OPAQUE-BROKEN", "WROTE"} {
		if strings.Contains(out, bad) {
			t.Errorf("image volume: %s:\n%s", bad, out)
		}
	}

	for _, tc := range []struct {
		name string
		m    *runtime.Mount
	}{
		{"writable", volume("/vol", multilayer, "", false)},
		{"missing-sub-path", volume("/vol", multilayer, "no/such/dir", true)},
	} {
		bad := ctrConfig("bad-"+tc.name, busybox, "true")
		bad.Mounts = []*runtime.Mount{tc.m}
		if _, err := p.tryCreate(bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s image volume: %v, want InvalidArgument", tc.name, err)
		}
	}
	unknown := ctrConfig("bad-unknown", busybox, "true")
	unknown.Mounts = []*runtime.Mount{volume("/vol", e.reg.Host+"/crid-test/never-pulled:latest", "", true)}
	if _, err := p.tryCreate(unknown); status.Code(err) != codes.NotFound {
		t.Errorf("image volume of an image not pulled: %v, want NotFound", err)
	}

	p.removeAll()
	e.assertNoContainerLeftovers()
}
