package vectors

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

// item is one user's stored vector (the DynamoDB item, decoded). Values are
// forward-decayed sums relative to Landmark.
type item struct {
	UserID   string
	Landmark int64 // epoch ms, a grid point
	HalfLife int64 // ms
	Events   int64 // click and impression events applied
	Version  int64 // incremented by every write; rewrites are conditional on it
	Clicks   map[string]float64
	Imps     map[string]float64
	Guards   map[string]string // shard id -> encodeGuard(last applied position)
	// HasMaps: the c, i and g maps all exist (the ADD path needs them).
	HasMaps bool
}

// features returns the number of features (keys of Clicks ∪ Imps).
func (it *item) features() int {
	n := len(it.Clicks)
	for k := range it.Imps {
		if _, ok := it.Clicks[k]; !ok {
			n++
		}
	}
	return n
}

// ev is one click or impression, reduced to what the vector needs.
type ev struct {
	pos      leases.Position
	ts       int64 // event time, epoch ms (after the future-skew clamp)
	click    bool
	features map[string]float64 // already filtered (names and weights valid)
}

// featDelta is one feature's increment, relative to a landmark.
type featDelta struct {
	name        string
	clicks, imp float64
}

// delta is what a run of one user's events adds to the item.
type delta struct {
	landmark    int64
	events      int64
	first, last leases.Position
	feats       []featDelta // sorted by name (deterministic requests)
}

// buildDelta sums events relative to landmark lm.
func buildDelta(evs []ev, lm, hl int64) delta {
	d := delta{landmark: lm, events: int64(len(evs))}
	if len(evs) == 0 {
		return d
	}
	d.first, d.last = evs[0].pos, evs[len(evs)-1].pos
	// Small linear-searched slice while few features, then an index map: most
	// user-batches touch a handful of features and a map costs more there.
	var index map[string]int
	for i := range evs {
		e := &evs[i]
		if len(e.features) == 0 {
			continue
		}
		g := growth(e.ts, lm, hl)
		for name, w := range e.features {
			j := -1
			if index != nil {
				if k, ok := index[name]; ok {
					j = k
				}
			} else {
				for k := range d.feats {
					if d.feats[k].name == name {
						j = k
						break
					}
				}
			}
			if j < 0 {
				j = len(d.feats)
				d.feats = append(d.feats, featDelta{name: name})
				if index != nil {
					index[name] = j
				} else if len(d.feats) > 16 {
					index = make(map[string]int, 32)
					for k := range d.feats {
						index[d.feats[k].name] = k
					}
				}
			}
			if e.click {
				d.feats[j].clicks += w * g
			} else {
				d.feats[j].imp += w * g
			}
		}
	}
	slices.SortFunc(d.feats, func(a, b featDelta) int { return cmp.Compare(a.name, b.name) })
	return d
}

// maxTS returns the newest event time.
func maxTS(evs []ev) int64 {
	m := int64(math.MinInt64)
	for i := range evs {
		m = max(m, evs[i].ts)
	}
	return m
}

// after returns the suffix of evs strictly after guard (an encodeGuard
// string; "" means none applied). Events are in shard order.
func after(evs []ev, guard string) ([]ev, error) {
	if guard == "" {
		return evs, nil
	}
	g, err := decodeGuard(guard)
	if err != nil {
		return nil, err
	}
	for i := range evs {
		if evs[i].pos.Compare(g) > 0 {
			return evs[i:], nil
		}
	}
	return nil, nil
}

// rewriteStats reports what a rewrite dropped.
type rewriteStats struct {
	pruned, faded, saturated int
}

// rewrite returns the item that results from applying d (relative to
// d.landmark) to cur (nil: new item) — rebasing cur to d.landmark when it is
// later — with the shard's guard moved to d.last, every value quantised to
// the stored resolution, faded features (zero at that resolution) removed and
// features beyond maxFeatures pruned down to pruneTo, weakest first
// (|clicks|+|impressions| at the landmark; ties by name).
func rewrite(cur *item, user, shard string, hl int64, d delta, maxFeatures, pruneTo int) (*item, rewriteStats) {
	var st rewriteStats
	next := &item{
		UserID: user, Landmark: d.landmark, HalfLife: hl,
		Clicks: map[string]float64{}, Imps: map[string]float64{}, Guards: map[string]string{},
		HasMaps: true,
	}
	if cur != nil {
		next.Events = cur.Events
		next.Version = cur.Version
		for k, v := range cur.Guards {
			next.Guards[k] = v
		}
		scale := 1.0
		if cur.Landmark != d.landmark {
			scale = growth(cur.Landmark, d.landmark, hl)
		}
		for k, v := range cur.Clicks {
			next.Clicks[k] = v * scale
		}
		for k, v := range cur.Imps {
			next.Imps[k] = v * scale
		}
	}
	for _, f := range d.feats {
		next.Clicks[f.name] += f.clicks
		next.Imps[f.name] += f.imp
	}
	next.Events += d.events
	next.Version++
	if !d.last.IsZero() {
		next.Guards[shard] = encodeGuard(d.last)
	}
	// Quantise, drop faded features, keep the key sets of Clicks and Imps equal.
	names := make([]string, 0, len(next.Clicks)+len(next.Imps))
	for k := range next.Clicks {
		names = append(names, k)
	}
	for k := range next.Imps {
		if _, ok := next.Clicks[k]; !ok {
			names = append(names, k)
		}
	}
	kept := names[:0]
	for _, k := range names {
		c, cz, cs := quantizeSat(next.Clicks[k])
		i, iz, is := quantizeSat(next.Imps[k])
		if cs || is {
			st.saturated++
		}
		if cz && iz {
			delete(next.Clicks, k)
			delete(next.Imps, k)
			st.faded++
			continue
		}
		next.Clicks[k], next.Imps[k] = c, i
		kept = append(kept, k)
	}
	if len(kept) > maxFeatures {
		slices.SortFunc(kept, func(a, b string) int {
			sa := math.Abs(next.Clicks[a]) + math.Abs(next.Imps[a])
			sb := math.Abs(next.Clicks[b]) + math.Abs(next.Imps[b])
			if c := cmp.Compare(sb, sa); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, k := range kept[pruneTo:] {
			delete(next.Clicks, k)
			delete(next.Imps, k)
			st.pruned++
		}
	}
	return next, st
}

func quantizeSat(v float64) (q float64, zero, saturated bool) {
	s, zero, saturated := fixed(v)
	q, _ = strconv.ParseFloat(s, 64)
	return q, zero, saturated
}
