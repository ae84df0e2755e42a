// Package keyed provides one mutex per key (a sandbox or container id).
package keyed

import "sync"

// Mutex is one mutex per key, dropped when nobody holds or waits on it.
// The zero value is ready to use.
type Mutex struct {
	mu sync.Mutex
	m  map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

// Lock locks key and returns its unlock function.
func (k *Mutex) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*refMutex{}
	}
	r := k.m[key]
	if r == nil {
		r = &refMutex{}
		k.m[key] = r
	}
	r.refs++
	k.mu.Unlock()
	r.Lock()
	return func() {
		r.Unlock()
		k.mu.Lock()
		if r.refs--; r.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
