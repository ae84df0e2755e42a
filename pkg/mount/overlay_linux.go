// Package mount mounts overlay filesystems over image snapshots. Its one
// trick: when the lowerdir list is too long for mount(2)'s one-page data
// limit, it mounts from the snapshots' common parent with relative names.
package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// pageLimit is what mount(2) copies of the data argument.
const pageLimit = 4096

// Overlay mounts an overlay at target. lowerdirs are top layer first; with
// no upper it is read-only. Long lists of lowerdirs that share a parent
// directory are passed relative to it.
func Overlay(target string, lowerdirs []string, upper, work string, readonly bool) error {
	if len(lowerdirs) == 0 {
		return fmt.Errorf("overlay at %s: no lower dirs", target)
	}
	opts := overlayOptions(lowerdirs, upper, work)
	var flags uintptr
	if readonly {
		flags |= unix.MS_RDONLY
	}
	if len(opts) < pageLimit {
		if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
			return fmt.Errorf("mount overlay at %s (%d layers): %w", target, len(lowerdirs), err)
		}
		return nil
	}
	dir, rel, ok := relativeTo(lowerdirs)
	if !ok {
		return fmt.Errorf("mount overlay at %s: %d lower dirs do not fit in a page and share no parent", target, len(lowerdirs))
	}
	opts = overlayOptions(rel, upper, work)
	if len(opts) >= pageLimit {
		return fmt.Errorf("mount overlay at %s: options are %d bytes even with relative lower dirs", target, len(opts))
	}
	return inDir(dir, func() error {
		if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
			return fmt.Errorf("mount overlay at %s (%d layers, relative to %s): %w", target, len(lowerdirs), dir, err)
		}
		return nil
	})
}

func overlayOptions(lowerdirs []string, upper, work string) string {
	opts := "lowerdir=" + strings.Join(lowerdirs, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	return opts
}

// relativeTo expresses every lowerdir relative to their common parent.
func relativeTo(lowerdirs []string) (string, []string, bool) {
	parent := filepath.Dir(lowerdirs[0])
	rel := make([]string, len(lowerdirs))
	for i, d := range lowerdirs {
		if filepath.Dir(d) != parent {
			return "", nil, false
		}
		rel[i] = filepath.Base(d)
	}
	return parent, rel, true
}

// inDir runs fn on a thread whose working directory alone is dir: the
// thread unshares its fs attributes, so the process's cwd is untouched, and
// it is never reused afterwards.
func inDir(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := os.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
