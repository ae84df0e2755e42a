package sandbox

import (
	"strings"

	"github.com/crid-dev/crid/pkg/store"
)

// Filter selects sandboxes for ListPodSandbox; its fields are ANDed.
type Filter struct {
	// ID is a full id or a unique id prefix. A prefix shared by several
	// sandboxes, like one matching none, selects nothing.
	ID string
	// Ready, when set, keeps only ready (true) or not ready (false) ones.
	Ready *bool
	// Labels must all be present with these values.
	Labels map[string]string
}

// Apply returns the sandboxes of all that f selects, in the same order.
func (f Filter) Apply(all []*store.Sandbox) []*store.Sandbox {
	var out []*store.Sandbox
	id := f.resolveID(all)
	if f.ID != "" && id == "" {
		return nil
	}
	for _, sb := range all {
		if id != "" && sb.ID != id {
			continue
		}
		if f.Ready != nil && (sb.State == store.StateReady) != *f.Ready {
			continue
		}
		if !MatchLabels(sb.Labels, f.Labels) {
			continue
		}
		out = append(out, sb)
	}
	return out
}

// resolveID turns f.ID into the one full id it designates, or "".
func (f Filter) resolveID(all []*store.Sandbox) string {
	if f.ID == "" {
		return ""
	}
	match := ""
	for _, sb := range all {
		if sb.ID == f.ID {
			return sb.ID
		}
		if strings.HasPrefix(sb.ID, f.ID) {
			if match != "" {
				return "" // ambiguous
			}
			match = sb.ID
		}
	}
	return match
}

// MatchLabels reports whether labels hold every key=value of selector.
func MatchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
