package e2e

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestExecSyncTimeoutKillsWholeTree: past its timeout, the command and
// every process it started (a pipeline's members) are killed, not only
// the command itself.
func TestExecSyncTimeoutKillsWholeTree(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("tree", nil)
	id := p.run(ctrConfig("c", e.image("busybox"), "sleep", "3600"))
	_, err := e.d.Runtime.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: sh("sleep 1234 | cat; echo never"), Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("ExecSync past its timeout: %v, want DeadlineExceeded", err)
	}
	left := ""
	gone := eventually(5*time.Second, func() bool {
		r, err := e.d.Runtime.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"ps", "-o", "args"}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		left = string(r.Stdout)
		return !strings.Contains(left, "sleep 1234")
	})
	if !gone {
		t.Errorf("a process the timed-out command started still runs:\n%s", left)
	}
}
