package oci

import (
	"fmt"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// readFileInRoot reads the regular file name inside root, resolving every
// symlink and ".." as if root were "/" (openat2 RESOLVE_IN_ROOT or its
// emulation), so that an image cannot make crid read a host file. Files that
// are not regular (FIFOs, devices) and files over max bytes are refused.
func readFileInRoot(root, name string, max int64) ([]byte, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	h, err := pathrs.OpenInRoot(root, name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	st, err := h.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, st.Mode().Type())
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, name, max)
}
