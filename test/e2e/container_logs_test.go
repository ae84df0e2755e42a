package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerLogCRIFormat: stdout and stderr lines in the CRI log
// format, in order, with timestamps that do not go back; a line longer than
// 16 KiB is split into P entries ending in an F entry.
func TestContainerLogCRIFormat(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("logs", nil)
	busybox := e.image("busybox")
	start := time.Now()
	cfg := ctrConfig("writer", busybox, sh(`echo out1; echo err1 >&2; echo out2
echo; echo "  spaced  "
head -c 40000 /dev/zero | tr '\0' a; echo
head -c 20000 /dev/zero | tr '\0' b >&2; echo >&2
echo last; printf no-newline`)...)
	// kubelet's layout: <log_directory>/<name>/<attempt>.log, the dir made by kubelet.
	cfg.LogPath = "writer/0.log"
	if err := os.MkdirAll(filepath.Join(p.logDir, "writer"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := p.run(cfg)
	st := e.waitExited(id)
	entries := readCRILog(t, p.logPath(cfg))
	if want := filepath.Join(p.logDir, "writer/0.log"); st.LogPath != want {
		t.Errorf("ContainerStatus.log_path %q, want %q", st.LogPath, want)
	}

	var prev time.Time
	for i, en := range entries {
		if en.ts.Before(start.Add(-time.Second)) || en.ts.Before(prev) {
			t.Errorf("entry %d: timestamp %v before the container started or before the previous entry (%v)", i, en.ts, prev)
		}
		prev = en.ts
		if len(en.text) > 16<<10 {
			t.Errorf("entry %d holds %d bytes, more than 16 KiB", i, len(en.text))
		}
	}
	long := strings.Repeat("a", 40000)
	// The output's last line has no newline: its entry may be F or P.
	if got, want := strings.TrimSuffix(logText(entries, "stdout"), "\n"), "out1\nout2\n\n  spaced  \n"+long+"\nlast\nno-newline"; got != want {
		t.Errorf("stdout text differs (%d bytes, want %d): %q", len(got), len(want), tail(got, 200))
	}
	if got, want := logText(entries, "stderr"), "err1\n"+strings.Repeat("b", 20000)+"\n"; got != want {
		t.Errorf("stderr text differs (%d bytes, want %d): %q", len(got), len(want), tail(got, 200))
	}
	var partials int
	for _, en := range entries {
		if en.tag == "P" {
			partials++
			if strings.Trim(en.text, "ab") != "" && en.text != "no-newline" {
				t.Errorf("unexpected partial entry %v", en)
			}
		}
	}
	if partials < 2 {
		t.Errorf("the 40000-byte line was written in %d partial entries, want it split at 16 KiB (>= 2)", partials)
	}
	for _, en := range entries {
		if en.text == "out2" && en.tag != "F" || en.text == "err1" && en.stream != "stderr" {
			t.Errorf("entry %v has the wrong tag or stream", en)
		}
	}
}

// counterScript prints line0, line1, ... every 20 ms.
const counterScript = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.02; done"

// lineNumbers returns the n of each "line<n>" in a log's stdout text.
func lineNumbers(t *testing.T, path string) []int {
	t.Helper()
	var nums []int
	for _, l := range strings.Split(strings.TrimSuffix(logText(readCRILog(t, path), "stdout"), "\n"), "\n") {
		if n, err := strconv.Atoi(strings.TrimPrefix(l, "line")); err == nil && strings.HasPrefix(l, "line") {
			nums = append(nums, n)
		}
	}
	return nums
}

// TestReopenContainerLogAfterRotation: after the log is renamed and
// ReopenContainerLog called, new output goes to a new file at the original
// path, and no line is lost or duplicated across the two files.
func TestReopenContainerLogAfterRotation(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("rotate", nil)
	cfg := ctrConfig("counter", e.image("busybox"), sh(counterScript)...)
	id := p.run(cfg)
	path := p.logPath(cfg)
	waitLog(t, path, "line5\n")
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.ReopenContainerLog(ctxT(t), &runtime.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	// The new file fills; then stop the container and compare.
	if !eventually(5*time.Second, func() bool {
		data, _ := os.ReadFile(path)
		return strings.Count(string(data), "\n") >= 5
	}) {
		t.Fatal("the new log file does not grow")
	}
	if _, err := e.d.Runtime.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	old := lineNumbers(t, rotated)
	cur := lineNumbers(t, path)
	all := append(append([]int{}, old...), cur...)
	for i, n := range all {
		if n != i {
			t.Fatalf("lines across rotation are not line0..line%d in order: rotated %v, new %v", len(all)-1, old, cur)
		}
	}
	if len(old) == 0 || len(cur) == 0 {
		t.Fatalf("rotated file has %d lines, new one %d", len(old), len(cur))
	}

	// ReopenContainerLog of a stopped container either creates a new file
	// and succeeds, or fails and creates none (CRI contract).
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.Runtime.ReopenContainerLog(ctxT(t), &runtime.ReopenContainerLogRequest{ContainerId: id})
	if _, serr := os.Stat(path); err != nil && serr == nil {
		t.Errorf("ReopenContainerLog of a stopped container failed (%v) but created %s", err, path)
	} else if err == nil && serr != nil {
		t.Errorf("ReopenContainerLog of a stopped container succeeded but made no new log file")
	}
	_, err = e.d.Runtime.ReopenContainerLog(ctxT(t), &runtime.ReopenContainerLogRequest{ContainerId: strings.Repeat("e", 64)})
	if status.Code(err) != codes.NotFound {
		t.Errorf("ReopenContainerLog of an unknown container: %v, want NotFound", err)
	}
}

// TestContainerLogCompleteAtExit: an exited container's log holds all of its
// output as soon as its status says Exited.
func TestContainerLogCompleteAtExit(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("logexit", nil)
	cfg := ctrConfig("burst", e.image("busybox"), sh("seq 1 20000")...)
	st, out := p.runToExit(cfg)
	if st.ExitCode != 0 {
		t.Fatalf("exit %d", st.ExitCode)
	}
	var b strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	if out != b.String() {
		t.Fatalf("log of an exited container is incomplete: %d bytes, want %d; ends %q", len(out), b.Len(), tail(out, 40))
	}
}
