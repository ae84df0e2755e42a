package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// CgroupPath returns the infra process's cgroup, relative to a hierarchy
// root: <parent>/crid-<id>. With the systemd driver the parent is a slice
// name, expanded the way systemd nests slices (a-b-c.slice lives in
// a.slice/a-b.slice/).
func CgroupPath(driver, parent, id string) (string, error) {
	if parent == "" {
		return "", nil
	}
	if driver == "systemd" {
		if !strings.HasSuffix(parent, ".slice") || strings.Contains(parent, "/") {
			return "", fmt.Errorf("cgroup parent %q is not a systemd slice (cgroup_driver is systemd): %w", parent, errdefs.ErrInvalidArgument)
		}
		name := strings.TrimSuffix(parent, ".slice")
		if name == "" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
			return "", fmt.Errorf("slice %q is malformed: %w", parent, errdefs.ErrInvalidArgument)
		}
		path, prefix := "", ""
		for _, part := range strings.Split(name, "-") {
			prefix += part
			path += "/" + prefix + ".slice"
			prefix += "-"
		}
		return path + "/crid-" + id + ".scope", nil
	}
	clean := filepath.Clean("/" + parent)
	if clean != "/"+strings.TrimPrefix(parent, "/") && clean+"/" != "/"+strings.TrimPrefix(parent, "/") {
		return "", fmt.Errorf("cgroup parent %q is not a clean path: %w", parent, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(clean, "crid-"+id), nil
}
