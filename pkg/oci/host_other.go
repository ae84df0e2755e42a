//go:build !linux

package oci

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// DevicesFromPath is not available off Linux.
func DevicesFromPath(hostPath string) ([]specs.LinuxDevice, error) {
	return nil, fmt.Errorf("device %s: %w", hostPath, errdefs.ErrUnimplemented)
}
