package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/mount"
	"github.com/crid-dev/crid/test/framework"
)

// floorTimes are the floor's latencies; up is create+start.
type floorTimes struct{ up, create, start, down []time.Duration }

// runcFloor measures the floor of a container: `runc create` + `runc
// start` (up) and removal (down) of n bundles made from spec, the
// config.json crid wrote for a live container, each on a fresh overlay
// rootfs over lower (the image's snapshots, top first), under a private
// runc --root. All n run at once before the first is removed, as in the
// crid loop. Mounts and bundles are made outside the timed window.
//
// down is `runc delete -f`; with kill it is `runc kill KILL`, a wait for
// the init to exit (pidfd) and `runc delete`, since runc 1.1's delete -f
// polls for the exit in 100 ms steps.
func runcFloor(b *testing.B, spec []byte, lower []string, n int, kill bool) floorTimes {
	b.Helper()
	dir, err := os.MkdirTemp("", "crid-bench-floor-")
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "runc-root")
	ids := make([]string, n)
	b.Cleanup(func() {
		for _, id := range ids {
			if id != "" {
				runc(root, "delete", "-f", id) // gone already on success
			}
		}
		framework.UnmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			b.Errorf("remove floor dir: %v", err)
		}
	})
	out, err := os.Create(filepath.Join(dir, "runc.out"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()

	bundles := make([]string, n)
	for i := range n {
		bundle := filepath.Join(dir, fmt.Sprintf("c%02d", i))
		rootfs := filepath.Join(bundle, "rootfs")
		for _, sub := range []string{rootfs, filepath.Join(bundle, "upper"), filepath.Join(bundle, "work")} {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := mount.Overlay(rootfs, lower, filepath.Join(bundle, "upper"), filepath.Join(bundle, "work"), false); err != nil {
			b.Fatal(err)
		}
		cfg, err := floorSpec(spec, rootfs, fmt.Sprintf("%s-%02d", filepath.Base(dir), i))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644); err != nil {
			b.Fatal(err)
		}
		bundles[i] = bundle
	}

	var ft floorTimes
	for i, bundle := range bundles {
		id := fmt.Sprintf("floor%02d", i)
		ids[i] = id
		t0 := time.Now()
		// The container's init inherits runc's stdio: a file, not a pipe,
		// so that runc's exit is not held up by a reader.
		cmd := exec.Command("runc", "--root", root, "create", "--bundle", bundle, id)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			b.Fatalf("runc create %s: %v\n%s", id, err, tail(out.Name()))
		}
		t1 := time.Now()
		if err := runc(root, "start", id); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ft.create, ft.start, ft.up = append(ft.create, t1.Sub(t0)), append(ft.start, t2.Sub(t1)), append(ft.up, t2.Sub(t0))
	}
	pids := make([]int, n)
	for i, id := range ids {
		var st struct {
			Status string `json:"status"`
			Pid    int    `json:"pid"`
		}
		data, err := exec.Command("runc", "--root", root, "state", id).Output()
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err != nil || st.Status != "running" {
			b.Fatalf("floor container %s is not running: %v %s", id, err, data)
		}
		pids[i] = st.Pid
	}
	for i, id := range ids {
		t0 := time.Now()
		if kill {
			err = killWaitDelete(root, id, pids[i])
		} else {
			err = runc(root, "delete", "-f", id)
		}
		if err != nil {
			b.Fatal(err)
		}
		ft.down = append(ft.down, time.Since(t0))
	}
	return ft
}

// killWaitDelete is `runc kill id KILL`, a wait on a pidfd of the init
// pid until it exits, and `runc delete id`.
func killWaitDelete(root, id string, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %s's init %d: %w", id, pid, err)
	}
	defer unix.Close(fd)
	if err := runc(root, "kill", id, "KILL"); err != nil {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return fmt.Errorf("wait for %s's init %d to exit: %v (n=%d)", id, pid, err, n)
		}
		break
	}
	return runc(root, "delete", id)
}

// floorSpec is crid's config.json for a floor container: rootfs at
// rootfs, cgroup leaf cgroup under the same parent as crid's container,
// and no namespace path that does not exist (a new namespace instead).
// Everything else, mounts included, is kept as crid wrote it; it is
// decoded generically so that no field is lost on the way.
func floorSpec(data []byte, rootfs, cgroup string) ([]byte, error) {
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("crid's config.json: %w", err)
	}
	r, _ := spec["root"].(map[string]any)
	if r == nil {
		return nil, fmt.Errorf("crid's config.json has no root")
	}
	r["path"] = rootfs
	if linux, ok := spec["linux"].(map[string]any); ok {
		if cg, ok := linux["cgroupsPath"].(string); ok && cg != "" {
			if parts := strings.Split(cg, ":"); len(parts) == 3 { // systemd slice:prefix:name
				linux["cgroupsPath"] = parts[0] + ":" + parts[1] + ":" + cgroup
			} else {
				linux["cgroupsPath"] = path.Join(path.Dir(cg), cgroup)
			}
		}
		nss, _ := linux["namespaces"].([]any)
		for _, ns := range nss {
			m, _ := ns.(map[string]any)
			if p, _ := m["path"].(string); p != "" {
				if _, err := os.Stat(p); err != nil {
					delete(m, "path")
				}
			}
		}
	}
	return json.MarshalIndent(spec, "", "\t")
}

func runc(root string, args ...string) error {
	out, err := exec.Command("runc", append([]string{"--root", root}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func tail(file string) string {
	data, _ := os.ReadFile(file)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// shimProcess returns the pid of the live crid-shim process of container
// id: argv[0] crid-shim and --id <id> in its command line. want, when not
// zero, is the pid crid reported; it must be that process.
func shimProcess(id string, want int) (int, error) {
	if want != 0 {
		if !isShim(want, id) {
			return 0, fmt.Errorf("pid %d that crid reports as the shim of %s is not a live crid-shim --id %s", want, id, id)
		}
		return want, nil
	}
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []int
	for _, p := range paths {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if isShim(pid, id) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("shim of container %s: found %d crid-shim processes with --id %s (%v)", id, len(found), id, found)
	}
	return found[0], nil
}

func isShim(pid int, id string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	if filepath.Base(args[0]) != "crid-shim" {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || bytes.Contains(stat, []byte(") Z ")) {
		return false
	}
	for i, a := range args {
		if a == "--id="+id || a == "--id" && i+1 < len(args) && args[i+1] == id {
			return true
		}
	}
	return false
}

// smapsRollup returns the Pss and Rss of pid in KiB, from
// /proc/<pid>/smaps_rollup.
func smapsRollup(pid int) (pss, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[2] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Pss:":
			pss = v
		case "Rss:":
			rss = v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/smaps_rollup has no Rss", pid)
	}
	return pss, rss, nil
}
