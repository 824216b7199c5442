package vdisk

import "sync"

// LRU is a small least-recently-used cache safe for concurrent use.
type LRU[V any] struct {
	mu    sync.Mutex
	max   int
	tick  uint64
	items map[uint64]*lruItem[V]
}

type lruItem[V any] struct {
	v    V
	used uint64
}

// NewLRU returns a cache that holds up to n items.
func NewLRU[V any](n int) *LRU[V] {
	return &LRU[V]{max: n, items: make(map[uint64]*lruItem[V], n)}
}

// Get returns the item under k and marks it used.
func (c *LRU[V]) Get(k uint64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.tick++
	it.used = c.tick
	return it.v, true
}

// Put stores v under k, evicting the least recently used item when the
// cache is full.
func (c *LRU[V]) Put(k uint64, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if it, ok := c.items[k]; ok {
		it.v, it.used = v, c.tick
		return
	}
	if len(c.items) >= c.max {
		var oldK uint64
		oldT := ^uint64(0)
		for key, it := range c.items {
			if it.used < oldT {
				oldK, oldT = key, it.used
			}
		}
		delete(c.items, oldK)
	}
	c.items[k] = &lruItem[V]{v: v, used: c.tick}
}
