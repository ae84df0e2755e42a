package unpack

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLchmodDoesNotFollow(t *testing.T) {
	for name, chmod := range map[string]func(string, uint32) error{"lchmod": lchmod, "O_PATH fallback": lchmodOPath} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			target, link, fifo := filepath.Join(dir, "target"), filepath.Join(dir, "link"), filepath.Join(dir, "fifo")
			if err := os.WriteFile(target, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := chmod(link, 0o4777); err != nil {
				t.Errorf("chmod symlink: %v", err)
			}
			wantMode(t, dir, "target", unix.S_IFREG|0o644)
			if err := chmod(fifo, 0o2751); err != nil {
				t.Errorf("chmod fifo: %v", err)
			}
			wantMode(t, dir, "fifo", unix.S_IFIFO|0o2751)
		})
	}
}
