package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

func TestPullThroughMirrorFromCertsD(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "crid-test/busybox", bb, "latest")
	certsd := t.TempDir()
	hostDir := filepath.Join(certsd, "crid-mirror.test")
	os.MkdirAll(hostDir, 0o755)
	downPort := framework.FreePort(t) // nothing listens there
	hosts := fmt.Sprintf(`server = "http://127.0.0.1:%d"

[host."http://127.0.0.1:%d"]
  capabilities = ["pull", "resolve"]

[host."http://%s"]
  capabilities = ["pull", "resolve"]
`, downPort, downPort, reg.Host)
	if err := os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	d := framework.Start(t, framework.Options{ExtraConfig: fmt.Sprintf("[registry]\nconfig_path = %q\n", certsd)})
	id := pull(t, d, "crid-mirror.test/crid-test/busybox:latest", nil)
	if id != bb.ConfigDigest.String() {
		t.Fatalf("pulled %s through the mirror, want %s", id, bb.ConfigDigest)
	}
	img := imageStatus(t, d, "crid-mirror.test/crid-test/busybox").Image
	if img == nil || img.RepoTags[0] != "crid-mirror.test/crid-test/busybox:latest" {
		t.Fatalf("image recorded as %v", img)
	}
}

func TestPullWithBasicAuth(t *testing.T) {
	reg := framework.StartRegistry(t, "crid", "s3cret")
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "crid-test/busybox", bb, "latest")
	d := framework.Start(t, framework.Options{})
	ref := reg.Host + "/crid-test/busybox:latest"
	for _, auth := range []*runtime.AuthConfig{nil, {Username: "crid", Password: "wrong"}} {
		_, err := d.Image.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("pull with auth %v: %v, want Unauthenticated", auth, err)
		}
	}
	assertNoImageLeftovers(t, d)
	if id := pull(t, d, ref, &runtime.AuthConfig{Username: "crid", Password: "s3cret"}); id != bb.ConfigDigest.String() {
		t.Fatalf("pulled %s", id)
	}
	d.Image.RemoveImage(ctxT(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	encoded := base64.StdEncoding.EncodeToString([]byte("crid:s3cret"))
	if id := pull(t, d, ref, &runtime.AuthConfig{Auth: encoded}); id != bb.ConfigDigest.String() {
		t.Fatalf("pulled %s with Auth", id)
	}
}

func TestImagesSurviveRestart(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	b, err := testimage.MultiLayer(false)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "crid-test/multilayer", b, "latest")
	d := framework.Start(t, framework.Options{})
	ref := reg.Host + "/crid-test/multilayer:latest"
	id := pull(t, d, ref, nil)
	before := verboseInfo(t, imageStatus(t, d, ref)).SnapshotDirs
	for _, crash := range []bool{false, true} {
		d.Restart(crash)
		st := imageStatus(t, d, ref)
		if st.Image == nil || st.Image.Id != id {
			t.Fatalf("after restart (crash=%v): %v", crash, st.Image)
		}
		after := verboseInfo(t, st).SnapshotDirs
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("snapshot dirs changed: %v -> %v", before, after)
		}
		for _, dir := range after {
			if _, err := os.Stat(filepath.Join(dir, "data")); err != nil && dir == after[0] {
				t.Fatalf("snapshot content gone after restart: %v", err)
			}
		}
	}
	if _, err := d.Image.RemoveImage(ctxT(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: id}}); err != nil {
		t.Fatal(err)
	}
	assertNoImageLeftovers(t, d)
}
