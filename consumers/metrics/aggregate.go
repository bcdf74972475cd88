package metrics

import (
	"fmt"
	"math"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
	metro "github.com/dgryski/go-metro"

	"github.com/clickstream-go/clickstream/event"
)

// RelativeAccuracy is the DDSketch relative accuracy of quantile values:
// a reported quantile is within 1% of the true value at that rank.
const RelativeAccuracy = 0.01

// hllSeed is the MetroHash seed axiomhq/hyperloglog's Insert uses; hashing
// strings ourselves with it avoids a []byte conversion per event while
// keeping sketches compatible with Insert.
const hllSeed = 1337

// sketchMapping is shared by every sketch so partials always merge.
var sketchMapping = func() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(RelativeAccuracy)
	if err != nil {
		panic(err)
	}
	return m
}()

// exactDistinctMax is how many distinct values a partial counts exactly
// (a set of 64-bit hashes) before it switches to a dense HyperLogLog.
const exactDistinctMax = 1024

// distinctSet counts distinct values: exactly while there are few, then in
// a dense precision-14 HyperLogLog (standard error 0.81%, 16 KiB).
// Hand-rolled around the library for two measured reasons: the library's
// sparse form re-encodes its whole list every ~160 new values (it made
// distinct counts 3× slower than all other aggregation together in
// BenchmarkAggregate), and its dense form is off by up to 10% below ~100
// values. Stored rows always hold a HyperLogLog (sparse when built from the
// exact set, which is near exact at these sizes), so readers merge them
// with the library alone.
type distinctSet struct {
	exact map[uint64]struct{}
	hll   *hyperloglog.Sketch
}

func (d *distinctSet) insert(h uint64) {
	if d.hll != nil {
		d.hll.InsertHash(h)
		return
	}
	if d.exact == nil {
		d.exact = make(map[uint64]struct{}, 16)
	}
	d.exact[h] = struct{}{}
	if len(d.exact) > exactDistinctMax {
		d.hll = hyperloglog.NewNoSparse()
		for h := range d.exact {
			d.hll.InsertHash(h)
		}
		d.exact = nil
	}
}

func (d *distinctSet) estimate() float64 {
	if d.hll != nil {
		return float64(d.hll.Estimate())
	}
	return float64(len(d.exact))
}

// sketch returns the set as a HyperLogLog (sparse when built from the
// exact set).
func (d *distinctSet) sketch() *hyperloglog.Sketch {
	if d.hll != nil {
		return d.hll
	}
	sk := hyperloglog.New14()
	for h := range d.exact {
		sk.InsertHash(h)
	}
	return sk
}

func (d *distinctSet) merge(o *distinctSet) error {
	if d.hll == nil && o.hll == nil {
		for h := range o.exact {
			d.insert(h)
		}
		return nil
	}
	if d.hll == nil {
		d.hll = d.sketch()
		d.exact = nil
	}
	return d.hll.Merge(o.sketch())
}

func newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketchFromStoreProvider(sketchMapping, store.DefaultProvider)
}

// maxFields bounds the distinct string fields of a definitions file: the
// per-event field cache is a 64-bit mask.
const maxFields = 64

// plan is a compiled Definitions: field accessors resolved to indexes and
// each value mapped to an aggregation slot, so the per-event path does no
// map lookups by name and allocates nothing.
type plan struct {
	fields   []strField
	fieldIdx map[string]int
	metrics  []*metricPlan
}

type cond struct {
	field int
	any   []string
}

type metricPlan struct {
	def      *MetricDef
	filter   []cond
	groupBy  []int
	counts   []countSlot
	floats   []floatSlot
	sketches []sketchSlot
	hlls     []hllSlot
	values   []valuePlan
}

type countSlot struct {
	name  string
	conds []cond
}

type floatSlot struct {
	name  string
	kind  string // sum, min, max
	num   numField
	conds []cond
}

type sketchSlot struct {
	key   string // field plus filter: the sketch is shared by its quantiles
	num   numField
	conds []cond
}

type hllSlot struct {
	key   string
	field int
	conds []cond
}

type slotRef struct {
	float bool
	slot  int
}

type valuePlan struct {
	name     string
	kind     string
	slot     int
	q        float64
	num, den []slotRef
}

func compile(d *Definitions) (*plan, error) {
	p := &plan{fieldIdx: map[string]int{}}
	field := func(name string) int {
		if i, ok := p.fieldIdx[name]; ok {
			return i
		}
		p.fieldIdx[name] = len(p.fields)
		p.fields = append(p.fields, lookupString(name))
		return len(p.fields) - 1
	}
	conds := func(w Where) []cond {
		var out []cond
		for _, k := range sortedKeys(w) {
			out = append(out, cond{field: field(k), any: w[k]})
		}
		return out
	}
	for i := range d.Metrics {
		m := &d.Metrics[i]
		mp := &metricPlan{def: m, filter: conds(m.Where)}
		for _, g := range m.GroupBy {
			mp.groupBy = append(mp.groupBy, field(g))
		}
		refs := map[string]slotRef{}
		for _, v := range m.Values {
			vp := valuePlan{name: v.Name, kind: v.Kind}
			switch v.Kind {
			case KindCount:
				vp.slot = len(mp.counts)
				mp.counts = append(mp.counts, countSlot{name: v.Name, conds: conds(v.Where)})
				refs[v.Name] = slotRef{slot: vp.slot}
			case KindSum, KindMin, KindMax:
				vp.slot = len(mp.floats)
				mp.floats = append(mp.floats, floatSlot{name: v.Name, kind: v.Kind, num: lookupNumeric(v.Field), conds: conds(v.Where)})
				refs[v.Name] = slotRef{float: true, slot: vp.slot}
			case KindQuantile:
				key := sourceKey(v.Field, v.Where)
				vp.slot, vp.q = -1, *v.Q
				for j, s := range mp.sketches {
					if s.key == key {
						vp.slot = j
					}
				}
				if vp.slot < 0 {
					vp.slot = len(mp.sketches)
					mp.sketches = append(mp.sketches, sketchSlot{key: key, num: lookupNumeric(v.Field), conds: conds(v.Where)})
				}
			case KindDistinct:
				key := sourceKey(v.Field, v.Where)
				vp.slot = -1
				for j, s := range mp.hlls {
					if s.key == key {
						vp.slot = j
					}
				}
				if vp.slot < 0 {
					vp.slot = len(mp.hlls)
					mp.hlls = append(mp.hlls, hllSlot{key: key, field: field(v.Field), conds: conds(v.Where)})
				}
			}
			mp.values = append(mp.values, vp)
		}
		for j := range mp.values {
			vp := &mp.values[j]
			if vp.kind != KindRatio {
				continue
			}
			v := m.value(vp.name)
			for _, n := range v.Numerator {
				vp.num = append(vp.num, refs[n])
			}
			for _, n := range v.Denominator {
				vp.den = append(vp.den, refs[n])
			}
		}
		p.metrics = append(p.metrics, mp)
	}
	if len(p.fields) > maxFields {
		return nil, fmt.Errorf("the definitions use %d distinct string fields; at most %d are supported", len(p.fields), maxFields)
	}
	return p, nil
}

// lagPlan aggregates consumer_lag rows (fed by the processor, not events).
var lagPlan = &metricPlan{
	def:    &lagDef,
	counts: []countSlot{{name: "records"}},
	floats: []floatSlot{{name: "millis_behind_latest", kind: KindMax}, {name: "watermark_delay_ms", kind: KindMax}},
	values: []valuePlan{
		{name: "millis_behind_latest", kind: KindMax, slot: 0},
		{name: "watermark_delay_ms", kind: KindMax, slot: 1},
		{name: "records", kind: KindCount, slot: 0},
	},
}

// sourceKey names a sketch's input in stored rows: the field, plus the
// filter when there is one ("request_time_ms|cache_class=HIT").
func sourceKey(field string, w Where) string {
	if len(w) == 0 {
		return field
	}
	var b strings.Builder
	b.WriteString(field)
	for i, k := range sortedKeys(w) {
		if i == 0 {
			b.WriteByte('|')
		} else {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.Join(w[k], ","))
	}
	return b.String()
}

// eventView evaluates string fields of one event at most once each, however
// many metrics and conditions read them.
type eventView struct {
	p    *plan
	e    *event.Event
	have uint64
	vals [maxFields]string
}

func (v *eventView) reset(e *event.Event) { v.e, v.have = e, 0 }

func (v *eventView) str(i int) string {
	if v.have&(1<<uint(i)) == 0 {
		v.vals[i] = v.p.fields[i](v.e)
		v.have |= 1 << uint(i)
	}
	return v.vals[i]
}

func (v *eventView) match(cs []cond) bool {
	for _, c := range cs {
		s := v.str(c.field)
		ok := false
		for _, a := range c.any {
			if s == a {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// partial is the mergeable aggregate of one metric, group and window as
// seen by one shard (or, at read time, merged over shards).
type partial struct {
	counts   []int64
	floats   []float64 // NaN: no value yet (min, max)
	sketches []*ddsketch.DDSketch
	hlls     []*distinctSet
}

func newPartial(mp *metricPlan) *partial {
	a := &partial{
		counts:   make([]int64, len(mp.counts)),
		floats:   make([]float64, len(mp.floats)),
		sketches: make([]*ddsketch.DDSketch, len(mp.sketches)),
		hlls:     make([]*distinctSet, len(mp.hlls)),
	}
	for i, f := range mp.floats {
		if f.kind != KindSum {
			a.floats[i] = math.NaN()
		}
	}
	return a
}

// add aggregates one event that passed the metric's filter. This is the hot
// path: no allocation except when a sketch is first created or grows.
func (a *partial) add(mp *metricPlan, v *eventView) {
	for i := range mp.counts {
		if mp.counts[i].conds == nil || v.match(mp.counts[i].conds) {
			a.counts[i]++
		}
	}
	for i := range mp.floats {
		f := &mp.floats[i]
		x, ok := f.num(v.e)
		if !ok || (f.conds != nil && !v.match(f.conds)) {
			continue
		}
		a.addFloat(i, f.kind, x)
	}
	for i := range mp.sketches {
		s := &mp.sketches[i]
		x, ok := s.num(v.e)
		if !ok || (s.conds != nil && !v.match(s.conds)) {
			continue
		}
		if a.sketches[i] == nil {
			a.sketches[i] = newSketch()
		}
		_ = a.sketches[i].Add(x) // values beyond ~1e300 are rejected; events are validated finite
	}
	for i := range mp.hlls {
		h := &mp.hlls[i]
		s := v.str(h.field)
		if s == "" || (h.conds != nil && !v.match(h.conds)) {
			continue
		}
		if a.hlls[i] == nil {
			a.hlls[i] = &distinctSet{}
		}
		a.hlls[i].insert(metro.Hash64Str(s, hllSeed))
	}
}

func (a *partial) addFloat(i int, kind string, x float64) {
	cur := a.floats[i]
	switch kind {
	case KindSum:
		a.floats[i] = cur + x
	case KindMin:
		if math.IsNaN(cur) || x < cur {
			a.floats[i] = x
		}
	case KindMax:
		if math.IsNaN(cur) || x > cur {
			a.floats[i] = x
		}
	}
}

// merge adds o into a (both of the same metric plan).
func (a *partial) merge(mp *metricPlan, o *partial) error {
	for i := range a.counts {
		a.counts[i] += o.counts[i]
	}
	for i, f := range mp.floats {
		if !math.IsNaN(o.floats[i]) {
			a.addFloat(i, f.kind, o.floats[i])
		}
	}
	for i, s := range o.sketches {
		if s == nil {
			continue
		}
		if a.sketches[i] == nil {
			a.sketches[i] = newSketch()
		}
		if err := a.sketches[i].MergeWith(s); err != nil {
			return fmt.Errorf("merge sketch %s: %w", mp.sketches[i].key, err)
		}
	}
	for i, h := range o.hlls {
		if h == nil {
			continue
		}
		if a.hlls[i] == nil {
			a.hlls[i] = &distinctSet{}
		}
		if err := a.hlls[i].merge(h); err != nil {
			return fmt.Errorf("merge distinct sketch %s: %w", mp.hlls[i].key, err)
		}
	}
	return nil
}

// values computes the metric's values. Values without data (a quantile of
// no events, a ratio over zero, the min of nothing) are left out.
func (a *partial) values(mp *metricPlan) map[string]float64 {
	out := make(map[string]float64, len(mp.values))
	sum := func(refs []slotRef) float64 {
		var t float64
		for _, r := range refs {
			if r.float {
				t += a.floats[r.slot]
			} else {
				t += float64(a.counts[r.slot])
			}
		}
		return t
	}
	for _, v := range mp.values {
		switch v.kind {
		case KindCount:
			out[v.name] = float64(a.counts[v.slot])
		case KindSum, KindMin, KindMax:
			if x := a.floats[v.slot]; !math.IsNaN(x) {
				out[v.name] = x
			}
		case KindRatio:
			if den := sum(v.den); den != 0 {
				out[v.name] = sum(v.num) / den
			}
		case KindQuantile:
			if s := a.sketches[v.slot]; s != nil && !s.IsEmpty() {
				if x, err := s.GetValueAtQuantile(v.q); err == nil {
					out[v.name] = x
				}
			}
		case KindDistinct:
			if h := a.hlls[v.slot]; h != nil {
				out[v.name] = h.estimate()
			} else {
				out[v.name] = 0
			}
		}
	}
	return out
}

// encode stores the partial in a Row's aggregate maps.
func (a *partial) encode(mp *metricPlan, r *Row) error {
	r.Counts = make(map[string]int64, len(a.counts))
	for i, c := range mp.counts {
		r.Counts[c.name] = a.counts[i]
	}
	r.Floats = make(map[string]float64, len(a.floats))
	for i, f := range mp.floats {
		if x := a.floats[i]; !math.IsNaN(x) && !math.IsInf(x, 0) {
			r.Floats[f.name] = x
		}
	}
	r.Sketches = make(map[string][]byte, len(a.sketches))
	for i, s := range a.sketches {
		if s != nil {
			var b []byte
			s.Encode(&b, false)
			r.Sketches[mp.sketches[i].key] = b
		}
	}
	r.Distinct = make(map[string][]byte, len(a.hlls))
	for i, h := range a.hlls {
		if h != nil {
			b, err := h.sketch().MarshalBinary()
			if err != nil {
				return fmt.Errorf("encode distinct sketch %s: %w", mp.hlls[i].key, err)
			}
			r.Distinct[mp.hlls[i].key] = b
		}
	}
	return nil
}

// decodePartial rebuilds a partial from a stored Row. Aggregates the
// current definitions do not name are ignored; ones they name but the row
// lacks (a value added to the definitions later) start empty.
func decodePartial(mp *metricPlan, r *Row) (*partial, error) {
	a := newPartial(mp)
	for i, c := range mp.counts {
		a.counts[i] = r.Counts[c.name]
	}
	for i, f := range mp.floats {
		if x, ok := r.Floats[f.name]; ok {
			a.floats[i] = x
		}
	}
	for i, s := range mp.sketches {
		b, ok := r.Sketches[s.key]
		if !ok {
			continue
		}
		sk, err := ddsketch.DecodeDDSketch(b, store.DefaultProvider, nil)
		if err != nil {
			return nil, fmt.Errorf("decode sketch %s of %s: %w", s.key, r.Key(), err)
		}
		a.sketches[i] = sk
	}
	for i, h := range mp.hlls {
		b, ok := r.Distinct[h.key]
		if !ok {
			continue
		}
		sk := hyperloglog.New14()
		if err := sk.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("decode distinct sketch %s of %s: %w", h.key, r.Key(), err)
		}
		a.hlls[i] = &distinctSet{hll: sk}
	}
	return a, nil
}
