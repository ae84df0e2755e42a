package unpack

import (
	"errors"
	"io"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openNoEINTR is open(2), retried when a signal interrupts it.
func openNoEINTR(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// writeAll writes all of p to fd.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}

// lchmod changes the mode of path without following a final symlink (a
// symlink is left alone).
func lchmod(path string, mode uint32) error {
	err := unix.Fchmodat(unix.AT_FDCWD, path, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	// Either path is a symlink or the kernel predates fchmodat2 (Linux 6.6).
	return lchmodOPath(path, mode)
}

// lchmodOPath chmods path through an O_PATH descriptor opened without
// following a final symlink (a symlink is left alone).
func lchmodOPath(path string, mode uint32) error {
	fd, err := openNoEINTR(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// lutimes sets the access and modification times of path without following
// a final symlink. A zero atime means mtime; times before the epoch are
// clamped to it.
func lutimes(path string, atime, mtime time.Time) error {
	ts := timespecs(atime, mtime)
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// futimens sets the access and modification times of the open file fd, like
// lutimes.
func futimens(fd int, atime, mtime time.Time) error {
	ts := timespecs(atime, mtime)
	// utimensat(fd, NULL, ts, 0) is futimens(3); x/sys has no wrapper.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func timespecs(atime, mtime time.Time) [2]unix.Timespec {
	if atime.IsZero() {
		atime = mtime
	}
	return [2]unix.Timespec{timespec(atime), timespec(mtime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.Unix() < 0 {
		return unix.Timespec{}
	}
	ts, err := unix.TimeToTimespec(t)
	if err != nil { // out of range for this platform's time_t
		return unix.Timespec{}
	}
	return ts
}
