package metrics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ReaderConfig configures a Reader. Zero fields take the defaults.
type ReaderConfig struct {
	// Definitions must match the processor's. Default: DefaultDefinitions().
	Definitions *Definitions
	// MaxRange bounds to − from of one query. Default 24h.
	MaxRange time.Duration
	// StaleOpenAfter: an open partial (its shard's watermark had not passed
	// the window when it was written) is still included once the window
	// ended this long ago — a shard that went quiet in Lambda, where no
	// idle polls advance the watermark, would otherwise hide it forever.
	// Default 2m.
	StaleOpenAfter time.Duration
	// Concurrency bounds the parallel per-group queries. Default 8.
	Concurrency int
	// Clock is the current time. Default time.Now.
	Clock func() time.Time
}

// Reader answers metric queries by merging the shards' partial rows at read
// time: counts add up, sketches merge, then values are computed.
type Reader struct {
	store Store
	cfg   ReaderConfig
}

// NewReader returns a Reader on store.
func NewReader(store Store, cfg ReaderConfig) *Reader {
	if cfg.Definitions == nil {
		cfg.Definitions = DefaultDefinitions()
	}
	if cfg.MaxRange <= 0 {
		cfg.MaxRange = 24 * time.Hour
	}
	if cfg.StaleOpenAfter <= 0 {
		cfg.StaleOpenAfter = 2 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Reader{store: store, cfg: cfg}
}

// Definitions returns the reader's definitions.
func (r *Reader) Definitions() *Definitions { return r.cfg.Definitions }

// Query selects windows of one metric.
type Query struct {
	Metric string
	// From (inclusive) and To (exclusive) bound window starts; a bound
	// inside a minute rounds up to the next window start.
	From, To time.Time
	// Dims keeps only groups with these dimension values.
	Dims map[string]string
	// IncludeOpen also merges partials of windows a shard has not
	// published yet (the live, incomplete current minute).
	IncludeOpen bool
}

// Result is the read API's response body.
type Result struct {
	Metric string      `json:"metric"`
	Rows   []ResultRow `json:"rows"`
}

// ResultRow is one window of one group, merged over shards.
type ResultRow struct {
	WindowStart time.Time          `json:"window_start"`
	Dims        map[string]string  `json:"dims"`
	Values      map[string]float64 `json:"values"`
	// Open: some partial merged in is not published yet (IncludeOpen only).
	Open bool `json:"open,omitempty"`
}

// Query errors.
var (
	ErrUnknownMetric = errors.New("unknown metric")
	ErrBadQuery      = errors.New("bad query")
)

func ceilMinute(t time.Time) time.Time {
	s := t.Truncate(time.Minute)
	if s.Before(t) {
		s = s.Add(time.Minute)
	}
	return s.UTC()
}

// plan returns the compiled plan of a metric.
func (r *Reader) metricPlan(name string) (*metricPlan, bool) {
	if name == LagMetric {
		return lagPlan, true
	}
	for _, mp := range r.cfg.Definitions.plan.metrics {
		if mp.def.Name == name {
			return mp, true
		}
	}
	return nil, false
}

// Query runs q. Errors wrap ErrUnknownMetric or ErrBadQuery when the query
// itself is at fault.
func (r *Reader) Query(ctx context.Context, q Query) (*Result, error) {
	mp, ok := r.metricPlan(q.Metric)
	if !ok {
		return nil, fmt.Errorf("%w %q (metrics: %v)", ErrUnknownMetric, q.Metric, r.cfg.Definitions.MetricNames())
	}
	def := mp.def
	for k := range q.Dims {
		if !contains(def.GroupBy, k) {
			return nil, fmt.Errorf("%w: %q is not a dimension of metric %s (dimensions: %v)", ErrBadQuery, k, def.Name, def.GroupBy)
		}
	}
	from, to := ceilMinute(q.From), ceilMinute(q.To)
	if !from.Before(to) {
		return &Result{Metric: def.Name, Rows: []ResultRow{}}, nil
	}
	if to.Sub(from) > r.cfg.MaxRange {
		return nil, fmt.Errorf("%w: range %s exceeds the maximum of %s", ErrBadQuery, to.Sub(from), r.cfg.MaxRange)
	}
	var groups []map[string]string
	if len(q.Dims) == len(def.GroupBy) {
		groups = []map[string]string{q.Dims}
	} else {
		all, err := r.store.ListDims(ctx, def.Name)
		if err != nil {
			return nil, err
		}
		for _, g := range all {
			match := len(g) == len(def.GroupBy)
			for k, v := range q.Dims {
				if g[k] != v {
					match = false
				}
			}
			if match {
				groups = append(groups, g)
			}
		}
	}
	now := r.cfg.Clock()
	results := make([][]ResultRow, len(groups))
	errs := make([]error, len(groups))
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = r.group(ctx, mp, g, from, to, q.IncludeOpen, now)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res := &Result{Metric: def.Name, Rows: []ResultRow{}}
	for _, rows := range results {
		res.Rows = append(res.Rows, rows...)
	}
	sort.SliceStable(res.Rows, func(i, j int) bool {
		a, b := res.Rows[i], res.Rows[j]
		if !a.WindowStart.Equal(b.WindowStart) {
			return a.WindowStart.Before(b.WindowStart)
		}
		return DimsKey(def.GroupBy, a.Dims) < DimsKey(def.GroupBy, b.Dims)
	})
	return res, nil
}

func (r *Reader) group(ctx context.Context, mp *metricPlan, dims map[string]string, from, to time.Time, includeOpen bool, now time.Time) ([]ResultRow, error) {
	rows, err := r.store.QueryRows(ctx, mp.def.Name, DimsKey(mp.def.GroupBy, dims), from, to)
	if err != nil {
		return nil, err
	}
	type acc struct {
		agg  *partial
		open bool
	}
	byWin := map[int64]*acc{}
	for i := range rows {
		row := &rows[i]
		end := row.Window.Add(time.Minute)
		if row.Open && !includeOpen && now.Sub(end) < r.cfg.StaleOpenAfter {
			continue
		}
		p, err := decodePartial(mp, row)
		if err != nil {
			return nil, err
		}
		k := row.Window.Unix()
		a := byWin[k]
		if a == nil {
			byWin[k] = &acc{agg: p, open: row.Open && includeOpen}
			continue
		}
		if err := a.agg.merge(mp, p); err != nil {
			return nil, err
		}
		a.open = a.open || (row.Open && includeOpen)
	}
	out := make([]ResultRow, 0, len(byWin))
	for k, a := range byWin {
		out = append(out, ResultRow{
			WindowStart: time.Unix(k, 0).UTC(),
			Dims:        dims,
			Values:      a.agg.values(mp),
			Open:        a.open,
		})
	}
	return out, nil
}

// MetricInfo describes a metric for GET /v1/metrics.
type MetricInfo struct {
	Name    string   `json:"name"`
	GroupBy []string `json:"group_by"`
	Values  []string `json:"values"`
	// LateDropped sums, over shards, the events dropped as later than the
	// allowed lateness.
	LateDropped int64 `json:"late_dropped"`
}

// ShardInfo is a shard's saved progress.
type ShardInfo struct {
	Shard              string    `json:"shard"`
	Watermark          time.Time `json:"watermark,omitzero"`
	MillisBehindLatest int64     `json:"millis_behind_latest"`
	Updated            time.Time `json:"updated"`
	Finished           bool      `json:"finished,omitempty"`
}

// Catalog is the body of GET /v1/metrics.
type Catalog struct {
	Metrics []MetricInfo `json:"metrics"`
	Shards  []ShardInfo  `json:"shards"`
}

// Catalog lists the metrics, their dropped counts and the shards' progress.
// Watermarks are as saved with each shard's durable position.
func (r *Reader) Catalog(ctx context.Context, outOfOrderness time.Duration) (*Catalog, error) {
	shards, err := r.store.ListShards(ctx)
	if err != nil {
		return nil, err
	}
	c := &Catalog{Metrics: []MetricInfo{}, Shards: []ShardInfo{}}
	for _, name := range r.cfg.Definitions.MetricNames() {
		def, _ := r.cfg.Definitions.Metric(name)
		mi := MetricInfo{Name: name, GroupBy: def.GroupBy, Values: def.ValueNames()}
		for _, s := range shards {
			mi.LateDropped += s.Dropped[name]
		}
		c.Metrics = append(c.Metrics, mi)
	}
	for _, s := range shards {
		si := ShardInfo{Shard: s.Shard, MillisBehindLatest: s.MillisBehindLatest, Updated: s.Updated, Finished: s.Finished}
		wm := s.IdleWatermark
		if !s.MaxEventTime.IsZero() {
			if w := s.MaxEventTime.Add(-outOfOrderness); w.After(wm) {
				wm = w
			}
		}
		si.Watermark = wm
		c.Shards = append(c.Shards, si)
	}
	return c, nil
}
