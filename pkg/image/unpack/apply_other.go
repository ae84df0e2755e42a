//go:build !linux

package unpack

import (
	"context"
	"fmt"
	"io"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Apply writes overlayfs snapshots, which exist only on Linux.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (Result, error) {
	return Result{}, fmt.Errorf("unpack layers: %w", errdefs.ErrUnimplemented)
}
