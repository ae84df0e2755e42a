package unpack

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// kind is what the applier created at a path.
type kind uint8

const (
	kindDir kind = 1 + iota
	kindFile
	kindSymlink
	kindSpecial // device, fifo or whiteout

	kindMask   kind = 0x7f
	hardlinked kind = 0x80 // the path is a hard link to an inode counted elsewhere
)

// dirMeta is what is applied to a directory once the layer is complete, so
// that writing its contents does not undo it (or fail on a read-only mode).
type dirMeta struct {
	mode         uint32
	atime, mtime time.Time
}

// applier writes one layer into root. nodes models every path it created:
// each path in it has only directories as ancestors (when a directory is
// replaced, everything below it leaves the model), so a path whose parent is
// a directory in the model cannot traverse a symlink.
type applier struct {
	ctx   context.Context
	root  string
	opts  Options
	src   *hashReader
	buf   []byte
	nodes map[string]kind
	dirs  map[string]dirMeta
	size  int64

	// uid and gid own what the applier creates when ownerIsCreator: no
	// directory has its setgid bit while the layer is written (directory
	// modes are applied last), so only a setgid root could change that.
	uid, gid       int
	ownerIsCreator bool
}

// Apply reads an uncompressed layer tar from r and writes it into dir, which
// must be an existing, empty directory that nobody else writes to meanwhile.
// It reads r to EOF, so Result.DiffID covers the whole stream. A malformed or
// truncated tar, or an entry that would reach outside dir, is
// ErrInvalidArgument; errors of r keep their own kind. On error dir holds a
// partial layer: the caller removes it.
//
// Like archive/tar, Apply accepts a stream that ends cleanly between two
// entries without the end-of-archive blocks; the caller's comparison of
// Result.DiffID with the image config's diff ID catches such a truncation.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (Result, error) {
	rootMode, err := checkEmptyDir(dir)
	if err != nil {
		return Result{}, err
	}
	src := &hashReader{r: r, h: sha256.New()}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(src)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)

	a := &applier{
		ctx:   ctx,
		root:  dir,
		opts:  opts,
		src:   src,
		buf:   *bufp,
		nodes: map[string]kind{".": kindDir},
		dirs:  map[string]dirMeta{},

		uid:            os.Geteuid(),
		gid:            os.Getegid(),
		ownerIsCreator: rootMode&os.ModeSetgid == 0,
	}
	tr := tar.NewReader(br)
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// ErrInsecurePath (GODEBUG=tarinsecurepath=0) still returns the
		// header; the names are checked here anyway.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return Result{}, src.streamError(err, "read layer tar")
		}
		if err := a.entry(hdr, tr); err != nil {
			return Result{}, err
		}
	}
	// The end-of-archive blocks and record padding are part of the diff ID.
	if _, err := io.CopyBuffer(io.Discard, br, a.buf); err != nil {
		return Result{}, src.streamError(err, "read layer tar trailer")
	}
	if err := a.finishDirs(); err != nil {
		return Result{}, err
	}
	var inodes int64
	for _, k := range a.nodes {
		if k&hardlinked == 0 {
			inodes++
		}
	}
	return Result{DiffID: digest.NewDigest(digest.SHA256, src.h), Size: a.size, Inodes: inodes}, nil
}

// checkEmptyDir returns the mode of dir if it is an empty directory.
func checkEmptyDir(dir string) (os.FileMode, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return 0, fmt.Errorf("layer directory: %w", err)
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("layer directory %q is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("layer directory: %w", err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return 0, fmt.Errorf("layer directory %q is not empty: %w", dir, errdefs.ErrInvalidArgument)
	}
	return fi.Mode(), nil
}

func (a *applier) full(name string) string {
	if name == "." {
		return a.root
	}
	return a.root + "/" + name
}

// entry applies one tar entry.
func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return invalidEntry(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return invalidEntry(hdr.Name, "%v", err)
	}
	if hdr.Uid < 0 || hdr.Uid >= math.MaxUint32 || hdr.Gid < 0 || hdr.Gid >= math.MaxUint32 {
		return invalidEntry(hdr.Name, "invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	if base := path.Base(name); strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr, name, base)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return invalidEntry(hdr.Name, "the layer root can only be a directory")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.dir(hdr, name)
	case tar.TypeReg, tar.TypeGNUSparse:
		return a.file(hdr, name, tr)
	case tar.TypeSymlink:
		return a.symlink(hdr, name)
	case tar.TypeLink:
		return a.hardlink(hdr, name)
	default:
		return a.special(hdr, name)
	}
}

// mkParents makes sure every ancestor of name is a directory, creating the
// missing ones; an ancestor that is a symlink or another non-directory is
// refused.
func (a *applier) mkParents(hdrName, name string) error {
	parent := path.Dir(name)
	if a.nodes[parent] == kindDir { // ancestors of a directory are directories
		return nil
	}
	for i := 0; i <= len(parent); i++ {
		if i < len(parent) && parent[i] != '/' {
			continue
		}
		p := parent[:i]
		switch k, ok := a.nodes[p]; {
		case !ok:
			if err := unix.Mkdir(a.full(p), 0o755); err != nil {
				return fmt.Errorf("layer entry %q: create directory %q: %w", hdrName, p, err)
			}
			a.nodes[p] = kindDir
		case k&kindMask == kindSymlink:
			return invalidEntry(hdrName, "path component %q is a symbolic link", p)
		case k != kindDir:
			return invalidEntry(hdrName, "path component %q is not a directory", p)
		}
	}
	return nil
}

// replace clears name for a new entry: an existing directory is kept when
// the new entry is a directory too (it reports true then), anything else is
// removed without following symlinks.
func (a *applier) replace(hdrName, name string, dir bool) (bool, error) {
	k, ok := a.nodes[name]
	if !ok {
		return false, nil
	}
	if k == kindDir {
		if dir {
			return true, nil
		}
		if err := os.RemoveAll(a.full(name)); err != nil {
			return false, fmt.Errorf("layer entry %q: replace directory: %w", hdrName, err)
		}
		prefix := name + "/"
		for p := range a.nodes {
			if strings.HasPrefix(p, prefix) {
				delete(a.nodes, p)
			}
		}
		for p := range a.dirs {
			if strings.HasPrefix(p, prefix) {
				delete(a.dirs, p)
			}
		}
		delete(a.dirs, name)
	} else if err := unix.Unlink(a.full(name)); err != nil {
		return false, fmt.Errorf("layer entry %q: replace: %w", hdrName, err)
	}
	delete(a.nodes, name)
	return false, nil
}

// prepare makes the parents of name and clears name itself.
func (a *applier) prepare(hdr *tar.Header, name string) error {
	if err := a.mkParents(hdr.Name, name); err != nil {
		return err
	}
	_, err := a.replace(hdr.Name, name, false)
	return err
}

func (a *applier) dir(hdr *tar.Header, name string) error {
	if name != "." {
		if err := a.mkParents(hdr.Name, name); err != nil {
			return err
		}
	}
	exists, err := a.replace(hdr.Name, name, true)
	if err != nil {
		return err
	}
	full := a.full(name)
	if !exists {
		if err := unix.Mkdir(full, 0o755); err != nil {
			return fmt.Errorf("layer entry %q: create directory: %w", hdr.Name, err)
		}
		a.nodes[name] = kindDir
	}
	// Mode and times are set by finishDirs; the owner and xattrs now.
	a.dirs[name] = dirMeta{mode: uint32(hdr.Mode) & 0o7777, atime: hdr.AccessTime, mtime: hdr.ModTime}
	if err := a.chown(hdr, full, -1); err != nil {
		return err
	}
	return a.setXattrs(hdr, full, -1, kindDir)
}

func (a *applier) file(hdr *tar.Header, name string, r io.Reader) error {
	if err := a.prepare(hdr, name); err != nil {
		return err
	}
	full := a.full(name)
	fd, err := openNoEINTR(full, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("layer entry %q: create file: %w", hdr.Name, err)
	}
	a.nodes[name] = kindFile
	err = a.fillFile(hdr, fd, full, r)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("layer entry %q: close: %w", hdr.Name, cerr)
	}
	return err
}

// fillFile copies the entry's content into fd, then sets owner, xattrs, mode
// and times on the descriptor, in that order (chown clears setuid bits and
// capabilities).
func (a *applier) fillFile(hdr *tar.Header, fd int, full string, r io.Reader) error {
	for {
		n, rerr := r.Read(a.buf)
		if n > 0 {
			if err := writeAll(fd, a.buf[:n]); err != nil {
				return fmt.Errorf("layer entry %q: write: %w", hdr.Name, err)
			}
			a.size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return a.src.streamError(rerr, fmt.Sprintf("layer entry %q", hdr.Name))
		}
		if n == len(a.buf) {
			if err := a.ctx.Err(); err != nil {
				return err
			}
		}
	}
	if err := a.chown(hdr, full, fd); err != nil {
		return err
	}
	if err := a.setXattrs(hdr, full, fd, kindFile); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("layer entry %q: chmod: %w", hdr.Name, err)
	}
	if err := futimens(fd, hdr.AccessTime, hdr.ModTime); err != nil {
		return fmt.Errorf("layer entry %q: set times: %w", hdr.Name, err)
	}
	return nil
}

func (a *applier) symlink(hdr *tar.Header, name string) error {
	if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return invalidEntry(hdr.Name, "invalid symlink target %q", hdr.Linkname)
	}
	if err := a.prepare(hdr, name); err != nil {
		return err
	}
	full := a.full(name)
	if err := unix.Symlink(hdr.Linkname, full); err != nil {
		return fmt.Errorf("layer entry %q: create symlink: %w", hdr.Name, err)
	}
	a.nodes[name] = kindSymlink
	return a.pathMeta(hdr, full, kindSymlink)
}

// hardlink links name to an earlier non-directory entry of this layer. The
// new name shares the target's inode and metadata; its header's own
// metadata is not applied.
func (a *applier) hardlink(hdr *tar.Header, name string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return invalidEntry(hdr.Name, "hard link target %q: %v", hdr.Linkname, err)
	}
	if err := a.checkLinkTarget(hdr, target); err != nil {
		return err
	}
	if target == name {
		return invalidEntry(hdr.Name, "hard link to itself")
	}
	if err := a.prepare(hdr, name); err != nil {
		return err
	}
	tk, ok := a.nodes[target]
	if !ok { // replacing name removed the directory holding the target
		return invalidEntry(hdr.Name, "hard link target %q was removed by this entry", hdr.Linkname)
	}
	if err := unix.Linkat(unix.AT_FDCWD, a.full(target), unix.AT_FDCWD, a.full(name), 0); err != nil {
		return fmt.Errorf("layer entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	a.nodes[name] = tk | hardlinked
	return nil
}

func (a *applier) checkLinkTarget(hdr *tar.Header, target string) error {
	k, ok := a.nodes[target]
	if ok {
		if k == kindDir {
			return invalidEntry(hdr.Name, "hard link target %q is a directory", hdr.Linkname)
		}
		return nil
	}
	for i := 0; i < len(target); i++ {
		if target[i] == '/' && a.nodes[target[:i]]&kindMask == kindSymlink {
			return invalidEntry(hdr.Name, "hard link target %q traverses symbolic link %q", hdr.Linkname, target[:i])
		}
	}
	return invalidEntry(hdr.Name, "hard link target %q does not exist in this layer", hdr.Linkname)
}

func (a *applier) special(hdr *tar.Header, name string) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
		return invalidEntry(hdr.Name, "invalid device number %d:%d", hdr.Devmajor, hdr.Devminor)
	}
	if err := a.prepare(hdr, name); err != nil {
		return err
	}
	full := a.full(name)
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknod(full, typ|0o600, int(dev)); err != nil {
		return fmt.Errorf("layer entry %q: mknod: %w", hdr.Name, err)
	}
	a.nodes[name] = kindSpecial
	return a.pathMeta(hdr, full, kindSpecial)
}

// whiteout translates an OCI whiteout entry: ".wh..wh..opq" marks its
// directory opaque, ".wh.NAME" becomes the overlayfs whiteout NAME (a 0/0
// character device), other ".wh..wh." names (AUFS metadata) are skipped.
func (a *applier) whiteout(hdr *tar.Header, name, base string) error {
	if base == whiteoutOpaque {
		// Creates the directory if the layer has not.
		if err := a.mkParents(hdr.Name, name); err != nil {
			return err
		}
		full := a.full(path.Dir(name))
		if err := unix.Lsetxattr(full, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("layer entry %q: mark directory opaque: %w", hdr.Name, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil
	}
	target := base[len(whiteoutPrefix):]
	if target == "" || target == "." || target == ".." {
		return invalidEntry(hdr.Name, "invalid whiteout")
	}
	wname := target
	if dir := path.Dir(name); dir != "." {
		wname = dir + "/" + target
	}
	if err := a.prepare(hdr, wname); err != nil {
		return err
	}
	full := a.full(wname)
	if err := unix.Mknod(full, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("layer entry %q: create whiteout: %w", hdr.Name, err)
	}
	a.nodes[wname] = kindSpecial
	return a.chown(hdr, full, -1)
}

// pathMeta sets owner, xattrs, mode (not on symlinks) and times of a
// non-regular entry without following it.
func (a *applier) pathMeta(hdr *tar.Header, full string, k kind) error {
	if err := a.chown(hdr, full, -1); err != nil {
		return err
	}
	if err := a.setXattrs(hdr, full, -1, k); err != nil {
		return err
	}
	if k != kindSymlink {
		if err := lchmod(full, uint32(hdr.Mode)&0o7777); err != nil {
			return fmt.Errorf("layer entry %q: chmod: %w", hdr.Name, err)
		}
	}
	return a.chtimes(hdr, full)
}

// chown sets the entry's owner on fd, or on full (not followed) if fd < 0.
func (a *applier) chown(hdr *tar.Header, full string, fd int) error {
	if a.opts.NoChown || (a.ownerIsCreator && hdr.Uid == a.uid && hdr.Gid == a.gid) {
		return nil
	}
	var err error
	if fd >= 0 {
		err = unix.Fchown(fd, hdr.Uid, hdr.Gid)
	} else {
		err = unix.Lchown(full, hdr.Uid, hdr.Gid)
	}
	if err != nil {
		return fmt.Errorf("layer entry %q: chown %d:%d: %w", hdr.Name, hdr.Uid, hdr.Gid, err)
	}
	return nil
}

// setXattrs applies the entry's SCHILY.xattr.* PAX records on fd, or on full
// (not followed) if fd < 0. A filesystem without support for a non-security
// xattr is not an error; overlayfs' own xattrs are never taken from a layer.
func (a *applier) setXattrs(hdr *tar.Header, full string, fd int, k kind) error {
	for key, val := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(key, paxXattrPrefix)
		if !ok || strings.HasPrefix(attr, overlayXattrPrefix) {
			continue
		}
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, attr, []byte(val), 0)
		} else {
			err = unix.Lsetxattr(full, attr, []byte(val), 0)
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EOPNOTSUPP) && !strings.HasPrefix(attr, "security."):
		// The kernel allows user.* xattrs on regular files and directories only.
		case errors.Is(err, unix.EPERM) && strings.HasPrefix(attr, "user.") && k != kindFile && k != kindDir:
		default:
			return fmt.Errorf("layer entry %q: set xattr %q: %w", hdr.Name, attr, err)
		}
	}
	return nil
}

func (a *applier) chtimes(hdr *tar.Header, full string) error {
	if err := lutimes(full, hdr.AccessTime, hdr.ModTime); err != nil {
		return fmt.Errorf("layer entry %q: set times: %w", hdr.Name, err)
	}
	return nil
}

// finishDirs sets the mode and times of the layer's directories, now that
// nothing more is written into them.
func (a *applier) finishDirs() error {
	for name, m := range a.dirs {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		full := a.full(name)
		if err := lchmod(full, m.mode); err != nil {
			return fmt.Errorf("layer directory %q: chmod: %w", name, err)
		}
		if err := lutimes(full, m.atime, m.mtime); err != nil {
			return fmt.Errorf("layer directory %q: set times: %w", name, err)
		}
	}
	return nil
}
