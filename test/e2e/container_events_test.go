package e2e

import (
	"context"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerEvents follows GetContainerEvents through a container's life
// (created, started, stopped, deleted), each event with its pod's status
// and the pod's container statuses as they were then; PodSandboxStatus
// carries the container statuses too (kubelet's evented PLEG).
func TestContainerEvents(t *testing.T) {
	e := newCtrEnv(t)
	p := e.pod("events", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := e.d.Runtime.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The server subscribes when its handler starts, which the client does
	// not wait for: a first container's events show it has.
	warm := p.run(ctrConfig("warm", e.image("busybox"), "sleep", "3600"))
	if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: warm}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the first container's events: %v", err)
		}
		if ev.ContainerId == warm && ev.ContainerEventType == runtime.ContainerEventType_CONTAINER_DELETED_EVENT {
			break
		}
	}
	id := p.run(ctrConfig("c", e.image("busybox"), "sleep", "3600"))
	if _, err := e.d.Runtime.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ   runtime.ContainerEventType
		state runtime.ContainerState // of the container in the event's statuses; -1 = absent
	}{
		{runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerState_CONTAINER_CREATED},
		{runtime.ContainerEventType_CONTAINER_STARTED_EVENT, runtime.ContainerState_CONTAINER_RUNNING},
		{runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerState_CONTAINER_EXITED},
		{runtime.ContainerEventType_CONTAINER_DELETED_EVENT, -1},
	}
	var last int64
	for _, w := range want {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for %v: %v", w.typ, err)
		}
		if ev.ContainerId != id || ev.ContainerEventType != w.typ || ev.CreatedAt < last {
			t.Fatalf("event %v for %.12s at %d, want %v for %.12s after %d", ev.ContainerEventType, ev.ContainerId, ev.CreatedAt, w.typ, id, last)
		}
		last = ev.CreatedAt
		if ev.PodSandboxStatus.GetId() != p.id || ev.PodSandboxStatus.State != runtime.PodSandboxState_SANDBOX_READY {
			t.Errorf("%v: pod status %v", w.typ, ev.PodSandboxStatus)
		}
		state := runtime.ContainerState(-1)
		for _, st := range ev.ContainersStatuses {
			if st.Id == id {
				state = st.State
			}
		}
		// The status is read when the event is sent: at least as far along.
		if w.state == -1 && state != -1 || w.state != -1 && state < w.state {
			t.Errorf("%v: the container's state in the event is %v, want %v", w.typ, state, w.state)
		}
	}

	other := p.run(ctrConfig("other", e.image("busybox"), "sleep", "3600"))
	resp, err := e.d.Runtime.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainersStatuses) != 1 || resp.ContainersStatuses[0].Id != other || resp.Timestamp == 0 {
		t.Errorf("PodSandboxStatus containers %v timestamp %d, want the running one", resp.ContainersStatuses, resp.Timestamp)
	}
}
