package vectors

import (
	"strings"
	"sync"
)

// knownUsers remembers users whose items this process wrote recently, and
// learns how often a user it does not remember turns out to be new. Both
// only choose the first move of a write (ADD first, or create first): a
// wrong guess costs one extra call, never a wrong result.
//
// The set is two generations of maps: lookups check both, inserts go to the
// current one, and when it holds half the capacity the older generation is
// dropped. That bounds memory at capacity entries with LRU-like behaviour
// for ~20 lines, which is all this needs; a general LRU library would add a
// dependency and a linked list per entry.
type knownUsers struct {
	mu       sync.Mutex
	cur, old map[string]struct{}
	half     int
	pNew     float64 // EWMA of "an unremembered user had no item"
}

func newKnownUsers(capacity int) *knownUsers {
	half := max(1, capacity/2)
	return &knownUsers{cur: make(map[string]struct{}, half), old: map[string]struct{}{}, half: half, pNew: 0.5}
}

// createFirst reports whether a write for user should start with the
// create: the user is not remembered and most unremembered users lately
// were new.
func (k *knownUsers) createFirst(user string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.cur[user]; ok {
		return false
	}
	if _, ok := k.old[user]; ok {
		return false
	}
	return k.pNew > 0.5
}

// written records that user's item exists; remembered says whether the
// user was remembered before the write, wasNew whether the write created
// the item.
func (k *knownUsers) written(user string, remembered, wasNew bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !remembered {
		x := 0.0
		if wasNew {
			x = 1
		}
		k.pNew += 0.02 * (x - k.pNew)
	}
	if _, ok := k.cur[user]; ok {
		return
	}
	if len(k.cur) >= k.half {
		k.old, k.cur = k.cur, make(map[string]struct{}, k.half)
	}
	// A copy: an event's strings share one copy of its whole record, so
	// keeping the user id itself kept ~300 bytes of JSON alive per
	// remembered user (~60 MB at the default 200,000).
	k.cur[strings.Clone(user)] = struct{}{}
}

func (k *knownUsers) remembered(user string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, a := k.cur[user]
	_, b := k.old[user]
	return a || b
}
