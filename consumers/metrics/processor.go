package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
)

// Name is the application's name, its lease namespace.
const Name = "metrics"

// Config configures the metrics Processor (`clickstream consume metrics`).
// Zero fields take the documented defaults.
type Config struct {
	// Definitions are the metrics to aggregate. Default: DefaultDefinitions().
	Definitions *Definitions
	// AllowedLateness is how long after a window's end (in watermark time)
	// late events still correct it; later ones are dropped and counted per
	// metric. Default 1h.
	AllowedLateness time.Duration
	// OutOfOrderness is how far behind the largest event time seen the
	// watermark trails: events up to this much out of order are never
	// late. A window is first published when the watermark passes its
	// end, so this is also the publication delay. Default 5s.
	OutOfOrderness time.Duration
	// IdleAfter: when a shard has had no records for this long while the
	// reader is at its tip, the watermark advances to processing time
	// minus IdleAfter, so quiet shards still publish. Default 10s.
	IdleAfter time.Duration
	// MaxClockSkew caps how far past a record's arrival time its event time
	// may move the watermark, so one client with a clock in the future
	// cannot make everyone else late. The event itself still counts in its
	// own window. Default 1m.
	MaxClockSkew time.Duration
	// FlushInterval is the minimum time between two writes of published
	// windows while processing (Flush always writes). Default 1s.
	FlushInterval time.Duration
	// Retention is how long rows live before DynamoDB's TTL removes them,
	// counted from the window's start. Default 30 days (720h).
	Retention time.Duration
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the processor's Prometheus metrics. Default nil:
	// none.
	Registerer prometheus.Registerer
	// Clock is processing time when a batch carries none. Default time.Now.
	Clock func() time.Time
}

func (c *Config) withDefaults() {
	if c.Definitions == nil {
		c.Definitions = DefaultDefinitions()
	}
	if c.AllowedLateness <= 0 {
		c.AllowedLateness = time.Hour
	}
	if c.OutOfOrderness <= 0 {
		c.OutOfOrderness = 5 * time.Second
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = 10 * time.Second
	}
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = time.Minute
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 30 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Processor aggregates events into per-shard, per-minute partial rows. It
// is a consumers.Processor for the long-running runtime and the Lambda
// adapter alike: rows hold their own "complete up to" position and the
// shard's watermark state is saved with the position it belongs to, so a
// replay cut into different batches produces the same rows.
type Processor struct {
	store Store
	cfg   Config
	plan  *plan
	m     *procMetrics

	dimsMu   sync.Mutex
	dimsSeen map[string]time.Time // metric#dimsKey → last index write

	// testHook, when set, is called at "rows" (rows written, progress not
	// yet) and "progress" (progress saved, not yet returned): the crash
	// test kills the process there.
	testHook func(point string)
}

var _ consumers.Processor = (*Processor)(nil)

// NewProcessor returns a Processor writing to store.
func NewProcessor(store Store, cfg Config) (*Processor, error) {
	if store == nil {
		return nil, errors.New("metrics processor: store is required")
	}
	cfg.withDefaults()
	if cfg.Definitions.plan == nil {
		return nil, errors.New("metrics processor: definitions not validated (use ParseDefinitions)")
	}
	m, err := newProcMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Processor{store: store, cfg: cfg, plan: cfg.Definitions.plan, m: m, dimsSeen: map[string]time.Time{}}, nil
}

// Name implements consumers.Processor: "metrics".
func (p *Processor) Name() string { return Name }

// OpenShard implements consumers.Processor. It loads the shard's saved
// progress; rows are loaded lazily when a record needs one.
func (p *Processor) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	st, ok, err := p.store.LoadShard(ctx, s.ID)
	if err != nil {
		return nil, fmt.Errorf("open metrics shard %s: %w", s.ID, err)
	}
	sp := &shardProc{
		p:        p,
		shard:    s.ID,
		metrics:  make([]metricState, len(p.plan.metrics)),
		returned: s.Checkpoint,
		view:     eventView{p: p.plan},
		lagRows:  map[int64]*memRow{},
	}
	for i := range sp.metrics {
		sp.metrics[i].windows = map[int64]*windowRows{}
	}
	sp.prog = progress{maxEvent: math.MinInt64, idleWM: math.MinInt64, dropped: make([]int64, len(p.plan.metrics))}
	if ok {
		pos, err := st.Position()
		if err != nil {
			return nil, fmt.Errorf("open metrics shard %s: %w", s.ID, err)
		}
		sp.prog.pos = pos
		if !st.MaxEventTime.IsZero() {
			sp.prog.maxEvent = st.MaxEventTime.UnixMilli()
		}
		if !st.IdleWatermark.IsZero() {
			sp.prog.idleWM = st.IdleWatermark.UnixMilli()
		}
		for i, mp := range p.plan.metrics {
			sp.prog.dropped[i] = st.Dropped[mp.def.Name]
		}
		sp.saved = sp.prog.clone()
		sp.savedMBL, sp.savedOpen = st.MillisBehindLatest, len(st.OpenRows)
		if err := sp.loadOpenRows(ctx, st.OpenRows); err != nil {
			return nil, fmt.Errorf("open metrics shard %s: %w", s.ID, err)
		}
	}
	// Records at or before the saved progress are in the rows already:
	// the runtime's checkpoint may trail it after a crash between writing
	// rows and checkpointing.
	sp.skipTo = sp.prog.pos
	if s.Checkpoint.After(sp.prog.pos) {
		sp.prog.pos = s.Checkpoint
		sp.skipTo = s.Checkpoint
	}
	p.cfg.Logger.Debug("metrics shard opened", "shard", s.ID, "checkpoint", s.Checkpoint.String(), "progress", sp.skipTo.String())
	return sp, nil
}

// loadOpenRows brings the rows a previous owner left open into memory, so
// they are published when the watermark passes their window.
func (sp *shardProc) loadOpenRows(ctx context.Context, keys []RowKey) error {
	if len(keys) == 0 {
		return nil
	}
	stored, err := sp.p.store.LoadRows(ctx, keys)
	if err != nil {
		return err
	}
	for i := range stored {
		r := &stored[i]
		if !r.Open {
			continue
		}
		m := -1
		for j, mp := range sp.p.plan.metrics {
			if mp.def.Name == r.Metric {
				m = j
			}
		}
		if m < 0 {
			continue // metric no longer defined
		}
		mp := sp.p.plan.metrics[m]
		agg, err := decodePartial(mp, r)
		if err != nil {
			return err
		}
		pos, err := DecodePosition(r.Pos)
		if err != nil {
			return err
		}
		win := r.Window.UnixMilli()
		ws := sp.metrics[m].windows[win]
		if ws == nil {
			ws = &windowRows{rows: map[string]*memRow{}}
			sp.metrics[m].windows[win] = ws
		}
		gk := make([]string, len(mp.def.GroupBy))
		for i, g := range mp.def.GroupBy {
			gk[i] = r.Dims[g]
		}
		ws.rows[strings.Join(gk, "\x00")] = &memRow{
			key:  RowKey{Metric: mp.def.Name, DimsKey: DimsKey(mp.def.GroupBy, r.Dims), Window: r.Window.UTC(), Shard: sp.shard},
			dims: r.Dims, mp: mp, agg: agg, win: win, pos: pos, loaded: true, stored: true, storedOpen: true,
		}
	}
	sp.p.m.rowsLoaded.Add(float64(len(stored)))
	return nil
}

// progress is a shard's state after some record: its position, the
// watermark inputs and the dropped counts. Saved snapshots of it make
// replays deterministic.
type progress struct {
	pos      consumers.Position
	maxEvent int64 // skew-capped max event time, Unix ms; MinInt64: none
	idleWM   int64 // Unix ms; MinInt64: none
	dropped  []int64
}

func (pr *progress) clone() *progress {
	c := *pr
	c.dropped = append([]int64(nil), pr.dropped...)
	return &c
}

func (pr *progress) watermark(ooo int64) int64 {
	wm := int64(math.MinInt64)
	if pr.maxEvent != math.MinInt64 {
		wm = pr.maxEvent - ooo
	}
	return max(wm, pr.idleWM)
}

const minuteMs = int64(time.Minute / time.Millisecond)

// floorMinute returns the start of the minute holding t (Unix ms).
func floorMinute(t int64) int64 {
	w := t / minuteMs * minuteMs
	if w > t {
		w -= minuteMs
	}
	return w
}

// memRow is a partial row held in memory.
type memRow struct {
	key    RowKey
	dims   map[string]string
	mp     *metricPlan
	agg    *partial
	win    int64              // window start, Unix ms
	pos    consumers.Position // the row holds every record up to here
	loaded bool
	stored bool // exists in the store
	// storedOpen: the stored version is open (not published); it is
	// rewritten once the watermark passes the window, dirty or not.
	storedOpen bool
	dirty      bool
	// pending is the shard's progress just before the first record not yet
	// written to this row: the durable position cannot pass it.
	pending *progress
}

type windowRows struct {
	rows map[string]*memRow // by group key
}

type metricState struct {
	windows map[int64]*windowRows
	lastWin int64
	last    *windowRows
}

// dropped marks a (record, metric) too late at the start of the batch.
var droppedRow = &memRow{}

type shardProc struct {
	p     *Processor
	shard string

	metrics []metricState
	lagRows map[int64]*memRow
	prog    progress
	skipTo  consumers.Position
	// saved is the progress last written with SaveShard; returned is the
	// position last returned to the runtime.
	saved     *progress
	savedMBL  int64
	savedOpen int // open rows listed in the saved progress
	returned  consumers.Position
	lastFlush time.Time
	lastRecAt time.Time
	mbl       int64
	ended     bool

	view   eventView
	refs   []*memRow
	keyBuf []byte
	load   []*memRow
	counts []int64 // events aggregated per metric in this batch
}

var _ consumers.EventMapsReleaser = (*shardProc)(nil)

// ReleasesEventMaps implements consumers.EventMapsReleaser: values read
// from an event's attrs and features are kept (dimensions copied), never
// the maps.
func (s *shardProc) ReleasesEventMaps() {}

// lookup finds or creates the row of metric m for the current event and
// window; new rows are queued for loading.
func (sp *shardProc) lookup(m int, win int64) *memRow {
	mp := sp.p.plan.metrics[m]
	ms := &sp.metrics[m]
	w := ms.last
	if w == nil || ms.lastWin != win {
		w = ms.windows[win]
		if w == nil {
			w = &windowRows{rows: map[string]*memRow{}}
			ms.windows[win] = w
		}
		ms.last, ms.lastWin = w, win
	}
	var row *memRow
	switch len(mp.groupBy) {
	case 0:
		row = w.rows[""]
	case 1:
		row = w.rows[sp.view.str(mp.groupBy[0])]
	default:
		sp.keyBuf = sp.keyBuf[:0]
		for i, g := range mp.groupBy {
			if i > 0 {
				sp.keyBuf = append(sp.keyBuf, 0)
			}
			sp.keyBuf = append(sp.keyBuf, sp.view.str(g)...)
		}
		row = w.rows[string(sp.keyBuf)]
	}
	if row != nil {
		return row
	}
	// The row outlives the batch: copies, since an event's strings share
	// one copy of its whole record and would keep it alive.
	dims := make(map[string]string, len(mp.groupBy))
	for i, g := range mp.groupBy {
		dims[mp.def.GroupBy[i]] = strings.Clone(sp.view.str(g))
	}
	var gk string
	switch len(mp.groupBy) {
	case 0:
	case 1:
		gk = dims[mp.def.GroupBy[0]]
	default:
		gk = string(sp.keyBuf)
	}
	row = &memRow{
		key:  RowKey{Metric: mp.def.Name, DimsKey: DimsKey(mp.def.GroupBy, dims), Window: time.UnixMilli(win).UTC(), Shard: sp.shard},
		dims: dims, mp: mp, win: win,
	}
	w.rows[gk] = row
	sp.load = append(sp.load, row)
	return row
}

// Process implements consumers.ShardProcessor.
func (sp *shardProc) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	cfg := &sp.p.cfg
	now := b.Now
	if now.IsZero() {
		now = cfg.Clock()
	}
	ooo := cfg.OutOfOrderness.Milliseconds()
	late := cfg.AllowedLateness.Milliseconds()
	skew := cfg.MaxClockSkew.Milliseconds()
	nm := len(sp.p.plan.metrics)

	// Pass 1: find every row the batch touches, so rows not in memory are
	// loaded in one round trip. Rows too late already at the batch's start
	// are not loaded (the watermark only moves forward).
	wm0 := sp.prog.watermark(ooo)
	sp.refs = sp.refs[:0]
	sp.load = sp.load[:0]
	for i := range b.Records {
		r := &b.Records[i]
		if !r.Applies() || !r.Position.After(sp.skipTo) {
			for m := 0; m < nm; m++ {
				sp.refs = append(sp.refs, nil)
			}
			continue
		}
		sp.view.reset(&r.Event)
		win := floorMinute(r.Event.TS.UnixMilli())
		for m, mp := range sp.p.plan.metrics {
			switch {
			case !sp.view.match(mp.filter):
				sp.refs = append(sp.refs, nil)
			case wm0 > win+minuteMs+late:
				sp.refs = append(sp.refs, droppedRow)
			default:
				sp.refs = append(sp.refs, sp.lookup(m, win))
			}
		}
	}
	if err := sp.loadRows(ctx); err != nil {
		return consumers.Position{}, err
	}

	// Pass 2: apply, record by record, with the watermark as it was just
	// before each record, so decisions never depend on batch boundaries.
	if cap(sp.counts) < nm {
		sp.counts = make([]int64, nm)
	}
	sp.counts = sp.counts[:nm]
	clear(sp.counts)
	for i := range b.Records {
		r := &b.Records[i]
		if !r.Position.After(sp.skipTo) {
			continue
		}
		if r.Applies() {
			refs := sp.refs[i*nm : (i+1)*nm]
			wm := sp.prog.watermark(ooo)
			var snap *progress
			for _, row := range refs {
				if row != nil && row != droppedRow && row.pending == nil &&
					wm <= row.win+minuteMs+late && r.Position.After(row.pos) {
					if snap == nil {
						snap = sp.prog.clone()
					}
					row.pending = snap
				}
			}
			sp.view.reset(&r.Event)
			for m, row := range refs {
				switch {
				case row == nil:
				case row == droppedRow || wm > row.win+minuteMs+late:
					sp.prog.dropped[m]++
					sp.p.m.dropped.WithLabelValues(sp.p.plan.metrics[m].def.Name).Inc()
				case !r.Position.After(row.pos):
					// Already in the stored row (written before a crash).
				default:
					row.agg.add(row.mp, &sp.view)
					row.dirty = true
					sp.counts[m]++
				}
			}
			t := r.Event.TS.UnixMilli()
			if !r.ArrivalTime.IsZero() {
				t = min(t, r.ArrivalTime.UnixMilli()+skew)
			}
			sp.prog.maxEvent = max(sp.prog.maxEvent, t)
		}
		sp.prog.pos = r.Position
	}
	for m, n := range sp.counts {
		if n > 0 {
			sp.p.m.events.WithLabelValues(sp.p.plan.metrics[m].def.Name).Add(float64(n))
		}
	}

	// Idle shards: advance the watermark from processing time, but only at
	// the tip of the shard, where new records arrive in real time.
	if len(b.Records) > 0 {
		sp.lastRecAt = now
	} else if b.MillisBehindLatest == 0 && !sp.lastRecAt.IsZero() && now.Sub(sp.lastRecAt) >= cfg.IdleAfter {
		sp.prog.idleWM = max(sp.prog.idleWM, now.Add(-cfg.IdleAfter).UnixMilli())
	} else if sp.lastRecAt.IsZero() {
		sp.lastRecAt = now
	}
	sp.mbl = b.MillisBehindLatest
	sp.noteLag(now, b)
	if b.ShardEnd {
		sp.ended = true
	}
	if now.Sub(sp.lastFlush) < cfg.FlushInterval && !b.ShardEnd {
		return consumers.Position{}, nil
	}
	return sp.flush(ctx, now, false)
}

// noteLag updates this processing-time minute's consumer_lag row.
func (sp *shardProc) noteLag(now time.Time, b consumers.Batch) {
	win := floorMinute(now.UnixMilli())
	row := sp.lagRows[win]
	if row == nil {
		dims := map[string]string{"shard": sp.shard}
		row = &memRow{
			key:  RowKey{Metric: LagMetric, DimsKey: DimsKey(lagDef.GroupBy, dims), Window: time.UnixMilli(win).UTC(), Shard: sp.shard},
			dims: dims, mp: lagPlan, agg: newPartial(lagPlan), win: win, loaded: true,
		}
		sp.lagRows[win] = row
	}
	row.agg.counts[0] += int64(len(b.Records))
	row.agg.addFloat(0, KindMax, float64(b.MillisBehindLatest))
	if wm := sp.prog.watermark(sp.p.cfg.OutOfOrderness.Milliseconds()); wm != math.MinInt64 {
		row.agg.addFloat(1, KindMax, float64(max(0, now.UnixMilli()-wm)))
		sp.p.m.watermarkDelay.WithLabelValues(sp.shard).Set(float64(now.UnixMilli()-wm) / 1000)
	}
	row.dirty = true
}

func (sp *shardProc) loadRows(ctx context.Context) error {
	if len(sp.load) == 0 {
		return nil
	}
	keys := make([]RowKey, len(sp.load))
	for i, r := range sp.load {
		keys[i] = r.key
	}
	stored, err := sp.p.store.LoadRows(ctx, keys)
	if err != nil {
		return fmt.Errorf("metrics shard %s: %w", sp.shard, err)
	}
	byKey := make(map[RowKey]*Row, len(stored))
	for i := range stored {
		k := stored[i].RowKey
		k.Window = k.Window.UTC()
		byKey[k] = &stored[i]
	}
	for _, row := range sp.load {
		if s := byKey[row.key]; s != nil {
			agg, err := decodePartial(row.mp, s)
			if err != nil {
				return fmt.Errorf("metrics shard %s: %w", sp.shard, err)
			}
			pos, err := DecodePosition(s.Pos)
			if err != nil {
				return fmt.Errorf("metrics shard %s: row %s: %w", sp.shard, row.key, err)
			}
			row.agg, row.pos, row.stored = agg, pos, true
		} else {
			row.agg = newPartial(row.mp)
		}
		row.loaded = true
	}
	sp.p.m.rowsLoaded.Add(float64(len(stored)))
	sp.load = sp.load[:0]
	return nil
}

// Flush implements consumers.ShardProcessor: every row is written (windows
// the watermark has not passed as open rows) and the progress saved.
func (sp *shardProc) Flush(ctx context.Context) (consumers.Position, error) {
	now := sp.p.cfg.Clock()
	if _, err := sp.flush(ctx, now, true); err != nil {
		return consumers.Position{}, err
	}
	return sp.prog.pos, nil
}

// dimsRefresh is how often a group's index entry is rewritten (to push its
// expiry out) while the group keeps appearing.
const dimsRefresh = 6 * time.Hour

// evictAfter is how long (in watermark time) clean rows of published
// windows stay in memory after the window's end; a later late event
// reloads its row from the store.
const evictAfter = 2 * time.Minute

// Close implements consumers.ShardProcessor: unwritten state is dropped;
// the next owner replays it from the checkpoint.
func (sp *shardProc) Close() {
	sp.metrics = nil
	sp.lagRows = nil
	sp.p.m.rowsInMemory.DeleteLabelValues(sp.shard)
	sp.p.m.watermarkDelay.DeleteLabelValues(sp.shard)
}

// procMetrics are the processor's Prometheus metrics.
type procMetrics struct {
	events, dropped              *prometheus.CounterVec
	rowsWritten, rowsLoaded      prometheus.Counter
	storeErrors                  prometheus.Counter
	flushSeconds                 prometheus.Histogram
	rowsInMemory, watermarkDelay *prometheus.GaugeVec
}

func newProcMetrics(reg prometheus.Registerer) (*procMetrics, error) {
	m := &procMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_metrics_events_total", Help: "Events aggregated into minute windows, per metric.",
		}, []string{"metric"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_metrics_late_dropped_total", Help: "Events later than the allowed lateness, dropped, per metric.",
		}, []string{"metric"}),
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_metrics_rows_written_total", Help: "Partial rows written to the metrics table.",
		}),
		rowsLoaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_metrics_rows_loaded_total", Help: "Partial rows reloaded from the metrics table (restarts, late events).",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_metrics_store_errors_total", Help: "Failed writes to the metrics table.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "clickstream_metrics_flush_seconds", Help: "Time to write a shard's rows and progress.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		rowsInMemory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_metrics_rows_in_memory", Help: "Partial rows held in memory, per shard.",
		}, []string{"shard"}),
		watermarkDelay: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_metrics_watermark_delay_seconds", Help: "Processing time minus the shard's event-time watermark.",
		}, []string{"shard"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.events, m.dropped, m.rowsWritten, m.rowsLoaded, m.storeErrors, m.flushSeconds, m.rowsInMemory, m.watermarkDelay} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics processor metrics: %w", err)
		}
	}
	return m, nil
}
