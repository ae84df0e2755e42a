package container

import (
	"time"
)

// EventType is what happened to a container.
type EventType int

// Container lifecycle events, as CRI's ContainerEventType.
const (
	EventCreated EventType = iota
	EventStarted
	EventStopped
	EventDeleted
)

// Event is one container lifecycle event.
type Event struct {
	ContainerID, SandboxID string
	Type                   EventType
	At                     time.Time
}

// eventBuffer is how many events a subscriber may lag behind before it
// misses some (a slow reader must not hold up the runtime).
const eventBuffer = 1024

// Subscribe returns a channel of lifecycle events from now on, and the
// function that ends the subscription.
func (m *Manager) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, eventBuffer)
	m.subMu.Lock()
	if m.subs == nil {
		m.subs = map[chan Event]bool{}
	}
	m.subs[ch] = true
	m.subMu.Unlock()
	return ch, func() {
		m.subMu.Lock()
		if m.subs[ch] {
			delete(m.subs, ch)
			close(ch)
		}
		m.subMu.Unlock()
	}
}

func (m *Manager) publish(id, sandboxID string, t EventType) {
	ev := Event{ContainerID: id, SandboxID: sandboxID, Type: t, At: time.Now()}
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for ch := range m.subs {
		select {
		case ch <- ev:
		default:
			m.log.Warn("container event subscriber is behind; event dropped", "container", id, "event", t)
		}
	}
}
