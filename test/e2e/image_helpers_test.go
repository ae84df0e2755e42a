package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

func pull(t *testing.T, d *framework.Daemon, ref string, auth *runtime.AuthConfig) string {
	t.Helper()
	resp, err := d.Image.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return resp.ImageRef
}

func imageStatus(t *testing.T, d *framework.Daemon, ref string) *runtime.ImageStatusResponse {
	t.Helper()
	st, err := d.Image.ImageStatus(ctxT(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}, Verbose: true})
	if err != nil {
		t.Fatalf("image status %s: %v", ref, err)
	}
	return st
}

type imageInfo struct {
	SnapshotDirs []string `json:"snapshotDirs"`
	ImageSpec    struct {
		Config struct {
			Labels map[string]string
			User   string
		}
	} `json:"imageSpec"`
}

func verboseInfo(t *testing.T, st *runtime.ImageStatusResponse) imageInfo {
	t.Helper()
	var info imageInfo
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", st.Info["info"], err)
	}
	return info
}

// entries lists the names in dir (nil when it does not exist).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// assertNoImageLeftovers checks that no snapshot, content blob or temp dir remains.
func assertNoImageLeftovers(t *testing.T, d *framework.Daemon) {
	t.Helper()
	if left := entries(t, filepath.Join(d.Root, "snapshots")); len(left) > 0 {
		t.Errorf("snapshots left: %v", left)
	}
	if left := entries(t, filepath.Join(d.Root, "content", "sha256")); len(left) > 0 {
		t.Errorf("content left: %v", left)
	}
	list, err := d.Image.ListImages(ctxT(t), &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Images) > 0 {
		t.Errorf("images left: %v", list.Images)
	}
}
