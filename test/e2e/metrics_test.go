package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/framework"
)

// TestMetrics: with metrics.address set, crid serves Prometheus metrics
// there: CRI calls by method and code, containers and pods by state.
func TestMetrics(t *testing.T) {
	port := framework.FreePort(t)
	e := newCtrEnvConfig(t, fmt.Sprintf("[metrics]\naddress = \"127.0.0.1:%d\"\n", port))
	p := e.pod("metrics", nil)
	p.run(ctrConfig("c", e.image("busybox"), "sleep", "3600"))
	if _, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: "no-such-container"}); err == nil {
		t.Fatal("status of an unknown container succeeded")
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`crid_grpc_requests_total{code="OK",method="/runtime.v1.RuntimeService/RunPodSandbox"} 1`,
		`crid_grpc_requests_total{code="OK",method="/runtime.v1.RuntimeService/StartContainer"} 1`,
		`crid_grpc_requests_total{code="NotFound",method="/runtime.v1.RuntimeService/ContainerStatus"} 1`,
		`crid_grpc_request_duration_seconds_count{method="/runtime.v1.RuntimeService/CreateContainer"} 1`,
		`crid_containers{state="running"} 1`,
		`crid_pod_sandboxes{state="ready"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
