package server

import (
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
)

var eventTypes = map[container.EventType]runtime.ContainerEventType{
	container.EventCreated: runtime.ContainerEventType_CONTAINER_CREATED_EVENT,
	container.EventStarted: runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
	container.EventStopped: runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
	container.EventDeleted: runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams container lifecycle events from now on (for
// kubelet's evented PLEG), each with its pod's status and the statuses of
// the pod's containers at the time it is sent.
func (s *RuntimeService) GetContainerEvents(req *runtime.GetEventsRequest, stream runtime.RuntimeService_GetContainerEventsServer) error {
	events, cancel := s.containers.Subscribe()
	defer cancel()
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			resp := &runtime.ContainerEventResponse{
				ContainerId: ev.ContainerID, ContainerEventType: eventTypes[ev.Type], CreatedAt: ev.At.UnixNano(),
			}
			// The pod may be gone by now (a removal's last events).
			if sb, err := s.sandboxes.Resolve(ev.SandboxID); err == nil {
				resp.PodSandboxStatus = podSandboxStatus(sb)
			}
			statuses, err := s.podContainerStatuses(ev.SandboxID)
			if err != nil {
				return toStatus(err)
			}
			resp.ContainersStatuses = statuses
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}
