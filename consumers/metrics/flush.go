package metrics

import (
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
)

// Writing a shard's rows: which rows a flush writes, the durable point it
// reports, and the progress row that makes a restart resume exactly.

// flush writes dirty rows — published ones, or all when all is set — then
// the shard's progress, and returns the newly durable position (zero when
// it has not moved).
func (sp *shardProc) flush(ctx context.Context, now time.Time, all bool) (consumers.Position, error) {
	start := time.Now()
	wm := sp.prog.watermark(sp.p.cfg.OutOfOrderness.Milliseconds())
	rows, written, newDims, err := sp.rowsToWrite(now, wm, all)
	if err != nil {
		return consumers.Position{}, err
	}
	if err := sp.putDims(ctx, newDims, now); err != nil {
		return consumers.Position{}, err
	}
	if err := sp.p.store.PutRows(ctx, rows); err != nil {
		sp.p.m.storeErrors.Inc()
		return consumers.Position{}, fmt.Errorf("metrics shard %s: %w", sp.shard, err)
	}
	if h := sp.p.testHook; h != nil && len(rows) > 0 {
		h("rows")
	}
	for _, row := range written {
		row.dirty, row.stored, row.pending = false, true, nil
		if row.mp != lagPlan {
			row.pos = sp.prog.pos
		}
	}
	sp.p.m.rowsWritten.Add(float64(len(rows)))

	durable := sp.durablePoint()
	if err := sp.saveProgress(ctx, durable, now); err != nil {
		return consumers.Position{}, err
	}
	sp.lastFlush = now
	sp.evict(wm, now)
	sp.p.m.flushSeconds.Observe(time.Since(start).Seconds())
	if durable.pos.After(sp.returned) {
		sp.returned = durable.pos
		return durable.pos, nil
	}
	return consumers.Position{}, nil
}

// windowRows yields every row of every open window of every metric.
func (sp *shardProc) windowRows() iter.Seq[*memRow] {
	return func(yield func(*memRow) bool) {
		for _, ms := range sp.metrics {
			for _, w := range ms.windows {
				for _, row := range w.rows {
					if !yield(row) {
						return
					}
				}
			}
		}
	}
}

// rowsToWrite picks the rows a flush writes: changed rows of published
// windows (all of them when all), rows stored as open whose window is now
// published, and the changed lag rows. newDims are those never stored.
func (sp *shardProc) rowsToWrite(now time.Time, wm int64, all bool) (rows []Row, written, newDims []*memRow, err error) {
	add := func(row *memRow, open, lag bool) error {
		r, err := sp.rowOut(row, now, open)
		if err != nil {
			return err
		}
		if lag {
			r.Pos = "" // lag rows are not positions of the shard's events
		}
		rows = append(rows, r)
		written = append(written, row)
		if !row.stored {
			newDims = append(newDims, row)
		}
		return nil
	}
	for row := range sp.windowRows() {
		published := sp.ended || row.win+minuteMs <= wm
		if !row.dirty && !(row.storedOpen && published) || !published && !all {
			continue
		}
		if err := add(row, !published, false); err != nil {
			return nil, nil, nil, err
		}
		row.storedOpen = !published // if the write fails, this processor is discarded
	}
	for _, row := range sp.lagRows {
		if row.dirty {
			if err := add(row, false, true); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return rows, written, newDims, nil
}

// durablePoint is the progress up to which everything is stored: just
// before the earliest record still held only in memory (in an unwritten
// open window), else everything handed.
func (sp *shardProc) durablePoint() *progress {
	durable := &sp.prog
	for row := range sp.windowRows() {
		if row.pending != nil && row.pending.pos.Compare(durable.pos) < 0 {
			durable = row.pending
		}
	}
	return durable
}

// saveProgress stores the shard's progress row as of durable, when it
// changed: the position, watermark state, drop counts and open rows.
func (sp *shardProc) saveProgress(ctx context.Context, durable *progress, now time.Time) error {
	var openRows []RowKey
	for row := range sp.windowRows() {
		if row.storedOpen {
			openRows = append(openRows, row.key)
		}
	}
	if sp.saved != nil && !durable.pos.After(sp.saved.pos) && !sp.ended && sp.savedMBL == sp.mbl &&
		durable.idleWM == sp.saved.idleWM && len(openRows) == 0 && sp.savedOpen == 0 {
		return nil
	}
	st := ShardState{
		Shard:              sp.shard,
		Pos:                EncodePosition(durable.pos),
		Dropped:            make(map[string]int64, len(durable.dropped)),
		MillisBehindLatest: sp.mbl,
		Updated:            now,
		Finished:           sp.ended && durable == &sp.prog,
		OpenRows:           openRows,
	}
	if durable.maxEvent != math.MinInt64 {
		st.MaxEventTime = time.UnixMilli(durable.maxEvent).UTC()
	}
	if durable.idleWM != math.MinInt64 {
		st.IdleWatermark = time.UnixMilli(durable.idleWM).UTC()
	}
	for i, mp := range sp.p.plan.metrics {
		st.Dropped[mp.def.Name] = durable.dropped[i]
	}
	if err := sp.p.store.SaveShard(ctx, st); err != nil {
		sp.p.m.storeErrors.Inc()
		return fmt.Errorf("metrics shard %s: %w", sp.shard, err)
	}
	sp.saved, sp.savedMBL, sp.savedOpen = durable.clone(), sp.mbl, len(openRows)
	if h := sp.p.testHook; h != nil {
		h("progress")
	}
	return nil
}

func (sp *shardProc) rowOut(row *memRow, now time.Time, open bool) (Row, error) {
	r := Row{
		RowKey:  row.key,
		Dims:    row.dims,
		Pos:     EncodePosition(sp.prog.pos),
		Open:    open,
		Updated: now,
		Expires: row.key.Window.Add(sp.p.cfg.Retention),
	}
	if err := row.agg.encode(row.mp, &r); err != nil {
		return Row{}, fmt.Errorf("metrics shard %s: %w", sp.shard, err)
	}
	return r, nil
}

func (sp *shardProc) putDims(ctx context.Context, rows []*memRow, now time.Time) error {
	p := sp.p
	byMetric := map[string][]map[string]string{}
	p.dimsMu.Lock()
	for _, row := range rows {
		id := row.key.PK()
		if t, ok := p.dimsSeen[id]; ok && now.Sub(t) < dimsRefresh {
			continue
		}
		p.dimsSeen[id] = now
		byMetric[row.key.Metric] = append(byMetric[row.key.Metric], row.dims)
	}
	p.dimsMu.Unlock()
	for metric, dims := range byMetric {
		if err := p.store.PutDims(ctx, metric, dims, now.Add(p.cfg.Retention)); err != nil {
			p.dimsMu.Lock()
			for _, d := range dims {
				delete(p.dimsSeen, rowPK(metric, DimsKey(sortedKeys(d), d)))
			}
			p.dimsMu.Unlock()
			return fmt.Errorf("metrics shard %s: %w", sp.shard, err)
		}
	}
	return nil
}

func (sp *shardProc) evict(wm int64, now time.Time) {
	keep := evictAfter.Milliseconds()
	n := 0
	for i := range sp.metrics {
		ms := &sp.metrics[i]
		for win, w := range ms.windows {
			for k, row := range w.rows {
				if !row.dirty && !row.storedOpen && row.pending == nil && row.loaded && win+minuteMs+keep <= wm {
					delete(w.rows, k)
				}
			}
			if len(w.rows) == 0 {
				delete(ms.windows, win)
				if ms.last == w {
					ms.last = nil
				}
			}
			n += len(w.rows)
		}
	}
	cur := floorMinute(now.UnixMilli())
	for win, row := range sp.lagRows {
		if !row.dirty && win < cur {
			delete(sp.lagRows, win)
		}
	}
	sp.p.m.rowsInMemory.WithLabelValues(sp.shard).Set(float64(n))
}
