package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestConcurrentContainerLifecycles runs many containers through their
// whole life at once in one pod (create, start, exec, stop, remove) while
// lists and stats run beside them: every call succeeds, each container
// answers as itself, and nothing is left.
func TestConcurrentContainerLifecycles(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("busy", nil)
	busybox := e.image("busybox")
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	stop := make(chan struct{})
	go func() { // kubelet-like polling all along
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.d.Runtime.ListContainers(ctxT(t), &runtime.ListContainersRequest{}); err != nil {
				errs <- fmt.Errorf("ListContainers: %w", err)
			}
			if _, err := e.d.Runtime.ListContainerStats(ctxT(t), &runtime.ListContainerStatsRequest{}); err != nil {
				errs <- fmt.Errorf("ListContainerStats: %w", err)
			}
		}
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("c%d", i)
			cfg := ctrConfig(name, busybox, "sleep", "3600")
			cfg.Envs = []*runtime.KeyValue{{Key: "WHO", Value: []byte(name)}}
			created, err := e.d.Runtime.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
			if err != nil {
				errs <- fmt.Errorf("create %s: %w", name, err)
				return
			}
			id := created.ContainerId
			if _, err := e.d.Runtime.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
				errs <- fmt.Errorf("start %s: %w", name, err)
			}
			r, err := e.d.Runtime.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo $WHO"}, Timeout: 30})
			if err != nil || strings.TrimSpace(string(r.GetStdout())) != name {
				errs <- fmt.Errorf("exec in %s: %q %v", name, r.GetStdout(), err)
			}
			if _, err := e.d.Runtime.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id}); err != nil {
				errs <- fmt.Errorf("stop %s: %w", name, err)
			}
			if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
				errs <- fmt.Errorf("remove %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.assertNoContainerLeftovers()
}
