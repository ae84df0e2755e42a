//go:build !linux

package netns

import (
	"fmt"
	"path/filepath"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// NetNS is a pinned network namespace; only Linux has them.
type NetNS struct {
	path string
}

// Option configures New.
type Option func(*options)

type options struct {
	loopbackUp bool
}

// WithLoopbackUp brings lo up in the new namespace (Linux only).
func WithLoopbackUp() Option { return func(o *options) { o.loopbackUp = true } }

var errNoNetNS = fmt.Errorf("network namespaces: %w", errdefs.ErrUnimplemented)

// New is not supported on this platform.
func New(pinDir, name string, opts ...Option) (*NetNS, error) { return nil, errNoNetNS }

// Load is not supported on this platform.
func Load(path string) (*NetNS, error) { return nil, errNoNetNS }

// ListPins is not supported on this platform.
func ListPins(pinDir string) ([]*NetNS, error) { return nil, errNoNetNS }

// IsPinned is always false on this platform.
func IsPinned(path string) bool { return false }

// Path returns the pin path.
func (n *NetNS) Path() string { return n.path }

// Name returns the pin's file name.
func (n *NetNS) Name() string { return filepath.Base(n.path) }

// Do is not supported on this platform.
func (n *NetNS) Do(fn func() error) error { return errNoNetNS }

// Remove is not supported on this platform.
func (n *NetNS) Remove() error { return errNoNetNS }

func isNetNS(path string) bool { return false }
