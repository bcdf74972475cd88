package vectors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// store is where items live: DynamoDB (dynamoStore) or, in pure-logic unit
// tests, a map with DynamoDB's decimal rules (memStore in the tests). One
// contract suite runs against both.
type store interface {
	// get reads an item with a strongly consistent read; nil when missing.
	get(ctx context.Context, user string) (*item, error)
	// add applies a delta with ADDs, conditioned on the item existing with
	// its maps, landmark and half-life equal to the request's, at most
	// room features, and the shard's guard before the delta's first event.
	// On a failed condition it returns errConflict and the current item (nil
	// when missing). errNeedRewrite: the delta cannot be applied as ADDs (too
	// large an expression, or a number limit).
	add(ctx context.Context, r addReq) (*item, error)
	// put writes a whole item: created (r.create: only if missing) or
	// rewritten (only if its version is still r.prevVersion). errConflict
	// and the current item when the condition fails.
	put(ctx context.Context, r putReq) (*item, error)
}

type addReq struct {
	user, shard string
	halfLife    int64
	d           delta
	room        int // condition: size(c) <= room
}

type putReq struct {
	next        *item
	create      bool
	prevVersion int64
}

var (
	errConflict    = errors.New("conditional write failed")
	errNeedRewrite = errors.New("delta must be applied by a rewrite")
)

// writeKind says how a user's events were applied.
type writeKind int

const (
	kindNoop    writeKind = iota // every event was already applied (replay)
	kindAdd                      // one UpdateItem of ADDs
	kindCreate                   // new user: conditional create
	kindRewrite                  // rebase, prune or oversized delta: conditional read-modify-write
)

var kindNames = [...]string{"noop", "add", "create", "rewrite"}

func (k writeKind) String() string { return kindNames[k] }

// writeResult is what applying one user's events did.
type writeResult struct {
	kind      writeKind
	applied   int // events applied by this call
	replayed  int // events skipped because the guard showed them applied
	conflicts int // failed conditions (each costs a round trip)
	calls     int // store calls, including retries
	stats     rewriteStats
}

// writer applies one user's events with the exactly-once protocol of
// docs/DESIGN.md §4.2: the optimistic ADD; on a failed condition, the item that
// came back with it says why — unknown user (create), events already applied
// (retry with only the newer ones, or nothing), another landmark (use it, or
// rebase), too many features or an oversized delta (rewrite and prune).
type writer struct {
	st          store
	halfLife    int64 // ms
	maxFeatures int
	pruneTo     int
	maxRounds   int // conflict rounds before giving up (concurrent writers)
	retry       retryPolicy
}

// apply writes one user's events. createFirst starts with the conditional
// create instead of the ADD: one call instead of two for a new user, two
// instead of one for an existing one (the failed create returns the item).
// The processor picks it for users it has not written recently when most
// such users turn out to be new; the result is the same either way.
func (w *writer) apply(ctx context.Context, shard, user string, evs []ev, createFirst bool) (writeResult, error) {
	var res writeResult
	var cur *item
	known := createFirst  // cur reflects the store (nil: item missing), or is assumed to
	forceRewrite := false // the delta cannot be ADDed
	for round := 0; round < w.maxRounds; round++ {
		todo := evs
		if known && cur != nil {
			if cur.HalfLife != w.halfLife {
				return res, fmt.Errorf("user %q: %w: item has %v, consumer configured with %v",
					user, ErrHalfLifeMismatch, time.Duration(cur.HalfLife)*time.Millisecond, time.Duration(w.halfLife)*time.Millisecond)
			}
			var err error
			if todo, err = after(evs, cur.Guards[shard]); err != nil {
				return res, fmt.Errorf("user %q: %w: %v", user, ErrCorruptItem, err)
			}
			res.replayed = len(evs) - len(todo)
			if len(todo) == 0 {
				res.kind = kindNoop
				return res, nil
			}
		}
		newest := gridLandmark(maxTS(todo), w.halfLife)

		switch {
		case known && cur == nil: // new user
			next, st := rewrite(nil, user, shard, w.halfLife, buildDelta(todo, newest, w.halfLife), w.maxFeatures, w.pruneTo)
			got, err := w.call(ctx, &res, func() (*item, error) { return w.st.put(ctx, putReq{next: next, create: true}) })
			if errors.Is(err, errConflict) {
				res.conflicts++
				if got == nil { // created meanwhile, but the store did not return it
					if got, err = w.get(ctx, &res, user); err != nil {
						return res, err
					}
				}
				cur = got
				continue
			}
			if err != nil {
				return res, err
			}
			res.kind, res.applied, res.stats = kindCreate, len(todo), st
			return res, nil

		case known && (forceRewrite || !cur.HasMaps || cur.Landmark < newest ||
			cur.features()+newKeys(cur, todo) > w.maxFeatures):
			lm := max(cur.Landmark, newest)
			next, st := rewrite(cur, user, shard, w.halfLife, buildDelta(todo, lm, w.halfLife), w.maxFeatures, w.pruneTo)
			got, err := w.call(ctx, &res, func() (*item, error) {
				return w.st.put(ctx, putReq{next: next, prevVersion: cur.Version})
			})
			if errors.Is(err, errConflict) {
				res.conflicts++
				cur, known = got, true
				continue
			}
			if err != nil {
				return res, err
			}
			res.kind, res.applied, res.stats = kindRewrite, len(todo), st
			return res, nil

		default: // the fast path: ADDs
			lm := newest
			room := w.maxFeatures
			d := buildDelta(todo, lm, w.halfLife)
			if known {
				lm = cur.Landmark // >= newest here: late events use the item's landmark
				d = buildDelta(todo, lm, w.halfLife)
				room -= newKeysDelta(cur, d)
			} else {
				room -= len(d.feats)
			}
			if room < 0 { // more new features than the cap: needs the item, and a prune
				if !known {
					var err error
					if cur, err = w.get(ctx, &res, user); err != nil {
						return res, err
					}
					known = true
				}
				forceRewrite = true
				continue
			}
			got, err := w.call(ctx, &res, func() (*item, error) {
				return w.st.add(ctx, addReq{user: user, shard: shard, halfLife: w.halfLife, d: d, room: room})
			})
			switch {
			case errors.Is(err, errConflict):
				res.conflicts++
				cur, known = got, true
				continue
			case errors.Is(err, errNeedRewrite):
				forceRewrite = true
				if !known {
					if cur, err = w.get(ctx, &res, user); err != nil {
						return res, err
					}
					known = true
				}
				continue
			case err != nil:
				return res, err
			}
			res.kind, res.applied = kindAdd, len(todo)
			return res, nil
		}
	}
	return res, fmt.Errorf("user %q: %w after %d rounds", user, ErrContention, w.maxRounds)
}

func (w *writer) get(ctx context.Context, res *writeResult, user string) (*item, error) {
	return w.call(ctx, res, func() (*item, error) { return w.st.get(ctx, user) })
}

// call runs one store operation, retrying throttling and transient errors
// with capped, jittered exponential backoff.
func (w *writer) call(ctx context.Context, res *writeResult, op func() (*item, error)) (*item, error) {
	for attempt := 1; ; attempt++ {
		res.calls++
		it, err := op()
		if err == nil || errors.Is(err, errConflict) || errors.Is(err, errNeedRewrite) ||
			!w.retry.retryable(err) || attempt >= w.retry.maxAttempts {
			return it, err
		}
		if w.retry.onRetry != nil {
			w.retry.onRetry(err)
		}
		if serr := retry.Sleep(ctx, retry.Delay(attempt, w.retry.base, w.retry.max)); serr != nil {
			return nil, fmt.Errorf("%w (retrying after: %v)", serr, err)
		}
	}
}

// newKeys counts the features the events would add to cur.
func newKeys(cur *item, evs []ev) int {
	seen := map[string]struct{}{}
	for i := range evs {
		for name := range evs[i].features {
			if _, ok := cur.Clicks[name]; ok {
				continue
			}
			if _, ok := cur.Imps[name]; ok {
				continue
			}
			seen[name] = struct{}{}
		}
	}
	return len(seen)
}

func newKeysDelta(cur *item, d delta) int {
	n := 0
	for _, f := range d.feats {
		_, c := cur.Clicks[f.name]
		_, i := cur.Imps[f.name]
		if !c && !i {
			n++
		}
	}
	return n
}

// retryPolicy is the backoff for throttling and transient errors.
type retryPolicy struct {
	maxAttempts int
	base, max   time.Duration
	retryable   func(error) bool
	onRetry     func(error)
}
