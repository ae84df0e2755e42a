package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

func TestPullListStatusRemoveByTagDigestAndID(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "crid-test/busybox", bb, "latest", "1.36")
	d := framework.Start(t, framework.Options{})
	ctx := ctxT(t)

	latest := reg.Host + "/crid-test/busybox:latest"
	id := pull(t, d, latest, nil)
	if id != bb.ConfigDigest.String() {
		t.Fatalf("image id = %s, want config digest %s", id, bb.ConfigDigest)
	}
	if id2 := pull(t, d, reg.Host+"/crid-test/busybox:1.36", nil); id2 != id {
		t.Fatalf("second tag pulled as %s, want %s", id2, id)
	}
	byDigest := reg.Host + "/crid-test/busybox@" + bb.ManifestDigest.String()
	if id3 := pull(t, d, byDigest, nil); id3 != id {
		t.Fatalf("pull by digest gave %s", id3)
	}

	for _, ref := range []string{latest, id, strings.TrimPrefix(id, "sha256:"), strings.TrimPrefix(id, "sha256:")[:12], byDigest} {
		st := imageStatus(t, d, ref)
		if st.Image == nil || st.Image.Id != id {
			t.Fatalf("ImageStatus(%q) = %v", ref, st.Image)
		}
	}
	img := imageStatus(t, d, latest).Image
	wantTags := []string{latest, reg.Host + "/crid-test/busybox:1.36"}
	if !slices.Equal(img.RepoTags, wantTags) || !slices.Equal(img.RepoDigests, []string{byDigest}) {
		t.Fatalf("tags %v digests %v", img.RepoTags, img.RepoDigests)
	}
	if img.Size == 0 || img.Uid != nil || img.Username != "" {
		t.Fatalf("size %d uid %v username %q", img.Size, img.Uid, img.Username)
	}

	list, err := d.Image.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	filtered, err := d.Image.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: reg.Host + "/crid-test/other"}}})
	if err != nil || len(filtered.Images) != 0 {
		t.Fatalf("filtered ListImages = %v, %v", filtered, err)
	}

	fs, err := d.Image.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
	if u := fs.ImageFilesystems[0]; u.UsedBytes.Value < 500_000 || u.InodesUsed.Value < 15 || u.FsId.Mountpoint != filepath.Join(d.Root, "snapshots") {
		t.Fatalf("image fs usage = %v", u)
	}

	// Removing by one tag removes the image with all its tags and layers,
	// as CRI's RemoveImage (and critest) want.
	if _, err := d.Image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: reg.Host + "/crid-test/busybox:1.36"}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{id, latest} {
		if st := imageStatus(t, d, ref); st.Image != nil {
			t.Fatalf("image still there as %s: %v", ref, st.Image)
		}
	}
	assertNoImageLeftovers(t, d)
	// RemoveImage is idempotent.
	if _, err := d.Image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: id}}); err != nil {
		t.Fatalf("removing a removed image: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	d := framework.Start(t, framework.Options{})
	ctx := ctxT(t)
	for _, tc := range []struct {
		ref  string
		code codes.Code
	}{
		{reg.Host + "/crid-test/absent:latest", codes.NotFound},
		{"Not//A:Ref", codes.InvalidArgument},
		{"", codes.InvalidArgument},
	} {
		_, err := d.Image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: tc.ref}})
		if status.Code(err) != tc.code {
			t.Errorf("pull %q: %v, want %v", tc.ref, err, tc.code)
		}
	}
	if _, err := d.Image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "Not//A:Ref"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("status of malformed ref: %v", err)
	}
	assertNoImageLeftovers(t, d)
}

// TestMultiLayerImageStacksInOverlay mounts the pulled snapshots as overlay
// lowerdirs and checks whiteouts, opaque dirs, links and xattrs.
func TestMultiLayerImageStacksInOverlay(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	d := framework.Start(t, framework.Options{})
	for _, docker := range []bool{false, true} {
		b, err := testimage.MultiLayer(docker)
		if err != nil {
			t.Fatal(err)
		}
		reg.Push(t, "crid-test/multilayer", b, "latest")
		ref := reg.Host + "/crid-test/multilayer:latest"
		pull(t, d, ref, nil)
		info := verboseInfo(t, imageStatus(t, d, ref))
		if len(info.SnapshotDirs) != 4 {
			t.Fatalf("snapshot dirs = %v", info.SnapshotDirs)
		}
		merged := t.TempDir()
		if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(info.SnapshotDirs, ":")); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })

		mustNotExist := []string{"data/gone", "opq/hidden"}
		for _, p := range mustNotExist {
			if _, err := os.Lstat(filepath.Join(merged, p)); !os.IsNotExist(err) {
				t.Errorf("docker=%v: %s visible through overlay: %v", docker, p, err)
			}
		}
		for p, want := range map[string]string{"data/keep": "kept\n", "opq/visible": "visible\n", "data/top": "top layer\n", "data/sym": "kept\n"} {
			got, err := os.ReadFile(filepath.Join(merged, p))
			if err != nil || string(got) != want {
				t.Errorf("docker=%v: %s = %q, %v", docker, p, got, err)
			}
		}
		var a, b2 syscall.Stat_t
		syscall.Stat(filepath.Join(merged, "data/orig"), &a)
		syscall.Stat(filepath.Join(merged, "data/link"), &b2)
		if a.Ino != b2.Ino || a.Nlink != 2 || a.Mode&0o777 != 0o640 {
			t.Errorf("hard link: ino %d/%d nlink %d mode %o", a.Ino, b2.Ino, a.Nlink, a.Mode&0o777)
		}
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(merged, "data/xattr"), "user.crid", buf)
		if err != nil || !bytes.Equal(buf[:n], []byte("1")) {
			t.Errorf("xattr user.crid = %q, %v", buf[:n], err)
		}
		if st, err := os.Stat(filepath.Join(merged, "tmp")); err != nil || st.Mode()&os.ModeSticky == 0 {
			t.Errorf("/tmp lost its sticky bit: %v", err)
		}
		unix.Unmount(merged, unix.MNT_DETACH)
	}
}

func TestMultiArchIndexPicksLinuxAmd64(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	idx, err := testimage.MultiArch()
	if err != nil {
		t.Fatal(err)
	}
	reg.PushIndex(t, "crid-test/multiarch", idx, "latest")
	d := framework.Start(t, framework.Options{})
	ref := reg.Host + "/crid-test/multiarch:latest"
	id := pull(t, d, ref, nil)
	st := imageStatus(t, d, ref)
	if got := verboseInfo(t, st).ImageSpec.Config.Labels["arch"]; got != "amd64" {
		t.Fatalf("pulled the %q image (id %s)", got, id)
	}
	if want := reg.Host + "/crid-test/multiarch@" + idx.Digest.String(); !slices.Contains(st.Image.RepoDigests, want) {
		t.Fatalf("repo digests %v lack the index digest %s", st.Image.RepoDigests, want)
	}
}

func TestNonRootImageUser(t *testing.T) {
	reg := framework.StartRegistry(t, "", "")
	for _, tc := range []struct {
		user, tag string
	}{{"1000:1000", "numeric"}, {"crid", "named"}} {
		b, err := testimage.NonRoot(tc.user)
		if err != nil {
			t.Fatal(err)
		}
		reg.Push(t, "crid-test/nonroot", b, tc.tag)
	}
	d := framework.Start(t, framework.Options{})
	pull(t, d, reg.Host+"/crid-test/nonroot:numeric", nil)
	pull(t, d, reg.Host+"/crid-test/nonroot:named", nil)
	if img := imageStatus(t, d, reg.Host+"/crid-test/nonroot:numeric").Image; img.Uid.GetValue() != 1000 || img.Username != "" {
		t.Errorf("numeric user: uid %v username %q", img.Uid, img.Username)
	}
	if img := imageStatus(t, d, reg.Host+"/crid-test/nonroot:named").Image; img.Uid != nil || img.Username != "crid" {
		t.Errorf("named user: uid %v username %q", img.Uid, img.Username)
	}
}
