package metrics

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

const shard0 = "shardId-000000000000"

func newTestProcessor(t *testing.T, st Store, cfg Config) *Processor {
	t.Helper()
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = time.Nanosecond // flush on every batch
	}
	p, err := NewProcessor(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, p *Processor, checkpoint consumers.Position) consumers.ShardProcessor {
	t.Helper()
	sp, err := p.OpenShard(context.Background(), consumers.Shard{ID: shard0, Checkpoint: checkpoint})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func process(t *testing.T, sp consumers.ShardProcessor, now time.Time, recs ...consumers.Record) consumers.Position {
	t.Helper()
	pos, err := sp.Process(context.Background(), consumers.Batch{ShardID: shard0, Records: recs, Now: now})
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return pos
}

func published(t *testing.T, st Store, metric string, from, to time.Time) *Result {
	t.Helper()
	res, err := NewReader(st, ReaderConfig{Clock: func() time.Time { return from }}).Query(context.Background(), Query{Metric: metric, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestFloorMinute(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 0}, {59_999, 0}, {60_000, 60_000}, {60_001, 60_000}, {-1, -60_000}, {-60_000, -60_000}, {-60_001, -120_000},
	} {
		if got := floorMinute(tc.in); got != tc.want {
			t.Errorf("floorMinute(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestProcessor_AssignsEventsToTheirMinuteWindow(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	recs := records(1,
		access(t0.Add(-time.Millisecond), "/a", "HIT", 200, 1), // 09:59
		access(t0, "/a", "HIT", 200, 1),                        // 10:00
		access(t0.Add(59999*time.Millisecond), "/a", "MISS", 200, 1),
		access(t0.Add(time.Minute), "/a", "HIT", 200, 1), // 10:01
	)
	process(t, sp, t0.Add(2*time.Minute), recs...)
	if _, err := sp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := NewReader(st, ReaderConfig{}).Query(context.Background(), Query{Metric: "access", From: t0.Add(-time.Minute), To: t0.Add(2 * time.Minute), IncludeOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"2026-11-22T09:59Z": 1, "2026-11-22T10:00Z": 2, "2026-11-22T10:01Z": 1}
	if len(res.Rows) != len(want) {
		t.Fatalf("rows = %+v, want 3 windows", res.Rows)
	}
	for _, r := range res.Rows {
		if w := want[r.WindowStart.Format(windowFormat)]; r.Values["requests"] != w {
			t.Errorf("window %s: requests = %v, want %v", r.WindowStart, r.Values["requests"], w)
		}
	}
}

// TestProcessor_WatermarkAndLateness walks one shard through the rules, one
// event at a time, with the default 5s out-of-orderness and 1h lateness.
func TestProcessor_WatermarkAndLateness(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	n := 0
	step := func(e event.Event) {
		n++
		process(t, sp, t0.Add(2*time.Hour+time.Duration(n)*time.Second), records(n, e)...)
	}
	count := func(win time.Time) (float64, bool) {
		res := published(t, st, "access", win, win.Add(time.Minute))
		if len(res.Rows) == 0 {
			return 0, false
		}
		return res.Rows[0].Values["requests"], true
	}
	steps := []struct {
		name      string
		ev        event.Event
		win       time.Time // window to check after the step
		want      float64
		published bool
	}{
		{"first event: window open", access(t0.Add(10*time.Second), "/a", "HIT", 200, 1), t0, 0, false},
		{"out of order inside the window", access(t0.Add(5*time.Second), "/a", "HIT", 200, 1), t0, 0, false},
		{"10:01:04: watermark 10:00:59, window still open", access(t0.Add(64*time.Second), "/a", "HIT", 200, 1), t0, 0, false},
		{"10:01:06: watermark 10:01:01 passes 10:01", access(t0.Add(66*time.Second), "/a", "HIT", 200, 1), t0, 2, true},
		{"10:00:59, late by 2s: published window corrected", access(t0.Add(59*time.Second), "/a", "HIT", 200, 1), t0, 3, true},
		{"far ahead: watermark 11:05:55", access(t0.Add(66*time.Minute), "/a", "HIT", 200, 1), t0, 3, true},
		{"10:05 event, 59m55s late: corrected", access(t0.Add(5*time.Minute), "/a", "HIT", 200, 1), t0.Add(5 * time.Minute), 1, true},
		{"10:05 again, later still but the row was evicted: reloaded and corrected", access(t0.Add(5*time.Minute+time.Second), "/a", "MISS", 200, 1), t0.Add(5 * time.Minute), 2, true},
		{"10:04 event, window ended 1h0m55s before watermark: dropped", access(t0.Add(4*time.Minute), "/a", "HIT", 200, 1), t0.Add(4 * time.Minute), 0, false},
		{"10:00 event: dropped, window kept as it was", access(t0.Add(time.Second), "/a", "HIT", 200, 1), t0, 3, true},
	}
	for _, s := range steps {
		step(s.ev)
		got, ok := count(s.win)
		if ok != s.published || got != s.want {
			t.Errorf("%s: window %s requests = %v published %v, want %v published %v", s.name, s.win.Format("15:04"), got, ok, s.want, s.published)
		}
	}
	if _, err := sp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	state, _, _ := st.LoadShard(context.Background(), shard0)
	if state.Dropped["access"] != 2 || state.Dropped["engagement"] != 0 {
		t.Errorf("dropped = %v, want access 2, engagement 0", state.Dropped)
	}
}

func TestProcessor_IdleShardAtTipAdvancesWatermarkFromProcessingTime(t *testing.T) {
	for _, tc := range []struct {
		name      string
		behind    int64
		idleFor   time.Duration
		published bool
	}{
		{"idle long enough at the tip", 0, 40 * time.Second, true},
		{"idle, but not for IdleAfter", 0, 25 * time.Second, false},
		{"behind the tip: no processing-time advance", 5000, 40 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewMemoryStore()
			sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
			e := access(t0.Add(30*time.Second), "/a", "HIT", 200, 1)
			process(t, sp, e.TS, records(1, e)...)
			// Idle polls: the runtime calls Process with no records.
			for d := time.Second; d <= tc.idleFor; d += time.Second {
				if _, err := sp.Process(context.Background(), consumers.Batch{ShardID: shard0, Now: e.TS.Add(d), MillisBehindLatest: tc.behind}); err != nil {
					t.Fatal(err)
				}
			}
			// Watermark = now − 10s = 10:00:30 + idle − 10s; passes 10:01 after 40s.
			if got := len(published(t, st, "access", t0, t0.Add(time.Minute)).Rows) == 1; got != tc.published {
				t.Errorf("published = %v, want %v", got, tc.published)
			}
		})
	}
}

func TestProcessor_FutureEventTimeMovesWatermarkOnlyToArrivalPlusSkew(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	future := access(t0.Add(24*time.Hour), "/a", "HIT", 200, 1)
	recs := records(1, future)
	recs[0].ArrivalTime = t0 // a client clock one day ahead
	process(t, sp, t0, recs...)
	// An on-time event is not late: the watermark is at most t0+1m−5s.
	normal := access(t0.Add(-10*time.Second), "/a", "MISS", 200, 1)
	process(t, sp, t0, records(2, normal)...)
	if _, err := sp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	state, _, _ := st.LoadShard(context.Background(), shard0)
	if state.Dropped["access"] != 0 {
		t.Fatalf("dropped = %d, want 0", state.Dropped["access"])
	}
	if want := t0.Add(time.Minute); !state.MaxEventTime.Equal(want) {
		t.Errorf("max event time = %s, want %s (arrival + MaxClockSkew)", state.MaxEventTime, want)
	}
	res := published(t, st, "access", t0.Add(-time.Minute), t0)
	if len(res.Rows) != 1 || res.Rows[0].Values["requests"] != 1 {
		t.Errorf("09:59 window = %+v, want 1 request published", res.Rows)
	}
}

func TestProcessor_BadRecordsAndOtherTypesAreSkipped(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	recs := records(1,
		access(t0, "/a", "HIT", 200, 1),
		event.Event{Type: "purchase", TS: t0, UserID: "u"},
		access(t0, "/a", "-", 200, 1),
		click(t0, "u1", "home"),
	)
	recs[1].Err = &event.Error{Field: "ts", Reason: "required"}
	process(t, sp, t0, recs...)
	if _, err := sp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := NewReader(st, ReaderConfig{Clock: func() time.Time { return t0.Add(time.Hour) }})
	res, _ := r.Query(context.Background(), Query{Metric: "access", From: t0, To: t0.Add(time.Minute)})
	if len(res.Rows) != 1 {
		t.Fatalf("rows = %+v", res.Rows)
	}
	v := res.Rows[0].Values
	if v["requests"] != 2 || v["cache_hit"] != 1 || v["hit_rate"] != 1 {
		t.Errorf("values = %v, want 2 requests, 1 hit, hit_rate 1 (no-cache request not in the rate)", v)
	}
}

// genEvents makes a shard's worth of traffic over a few minutes: out of
// order within seconds, a few events minutes late, several routes and
// placements.
func genEvents(rng *rand.Rand, n int, start time.Time) []event.Event {
	routes := []string{"/api/items/:id", "/api/feed", "/api/users/:id"}
	caches := []string{"HIT", "HIT", "HIT", "MISS", "EXPIRED", "STALE", "-", ""}
	placements := []string{"home_feed", "search", "related"}
	evs := make([]event.Event, n)
	for i := range evs {
		ts := start.Add(time.Duration(i) * 4 * time.Minute / time.Duration(n)).Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)
		if rng.IntN(50) == 0 {
			ts = ts.Add(-5 * time.Minute) // five minutes late
		}
		switch rng.IntN(3) {
		case 0, 1:
			ms := 1 + rng.ExpFloat64()*40
			status := []int{200, 200, 200, 304, 404, 503}[rng.IntN(6)]
			evs[i] = access(ts, routes[rng.IntN(len(routes))], caches[rng.IntN(len(caches))], status, ms)
		default:
			u := "u-" + string(rune('a'+rng.IntN(26))) + string(rune('a'+rng.IntN(26)))
			if rng.IntN(8) == 0 {
				evs[i] = click(ts, u, placements[rng.IntN(3)])
			} else {
				evs[i] = impression(ts, u, placements[rng.IntN(3)])
			}
		}
	}
	return evs
}

// split cuts recs into random batches of 1..max records.
func split(rng *rand.Rand, recs []consumers.Record, max int) [][]consumers.Record {
	var out [][]consumers.Record
	for len(recs) > 0 {
		n := min(1+rng.IntN(max), len(recs))
		out = append(out, recs[:n])
		recs = recs[n:]
	}
	return out
}

func TestProcessor_SameResultWhateverTheBatchBoundariesOrHost(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	evs := genEvents(rng, 3000, t0)
	recs := records(1, evs...)
	want := oracle(evs)
	end := t0.Add(time.Hour)

	run := func(name string, feed func(p *Processor)) {
		t.Run(name, func(t *testing.T) {
			st := NewMemoryStore()
			feed(newTestProcessor(t, st, Config{}))
			r := NewReader(st, ReaderConfig{Clock: func() time.Time { return end }})
			a, e := queryAll(t, r, t0.Add(-10*time.Minute), end)
			checkAgainstOracle(t, want, a, e)
		})
	}
	run("one batch", func(p *Processor) {
		sp := open(t, p, consumers.Position{})
		process(t, sp, t0, recs...)
		if _, err := sp.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	run("runtime: random batches", func(p *Processor) {
		sp := open(t, p, consumers.Position{})
		for _, b := range split(rng, recs, 200) {
			process(t, sp, b[len(b)-1].ArrivalTime, b...)
		}
		if _, err := sp.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	run("lambda: open, process, flush per invocation", func(p *Processor) {
		var cp consumers.Position
		for _, b := range split(rng, recs, 300) {
			sp := open(t, p, cp)
			process(t, sp, time.Now(), b...)
			pos, err := sp.Flush(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			sp.Close()
			cp = pos
		}
	})
}

// TestProcessor_ReplayAfterCrashIsExact crashes the processor (drops it
// without Flush) at many points, including between rows written and
// progress saved and in the middle of a row write, and resumes from the
// last position it returned, with different batch cuts.
func TestProcessor_ReplayAfterCrashIsExact(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { replayAfterCrash(t, seed) })
	}
}

func replayAfterCrash(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 4))
	evs := genEvents(rng, 3000, t0)
	recs := records(1, evs...)
	st := NewMemoryStore()
	const wantCrashes = 5
	crashes := 0
	var cp consumers.Position
	type crash struct{}
	for run := 0; ; run++ {
		if run > 50 {
			t.Fatal("too many runs")
		}
		p := newTestProcessor(t, st, Config{})
		st.hook = nil
		if crashes < wantCrashes {
			// Crash after rows are written but before progress is saved,
			// after progress is saved but before the runtime checkpoints,
			// or in the middle of writing a flush's rows.
			crashAt := 1 + rng.IntN(4)
			switch point := rng.IntN(3); point {
			case 0, 1:
				name := []string{"rows", "progress"}[point]
				p.testHook = func(at string) {
					if at == name {
						if crashAt--; crashAt == 0 {
							panic(crash{})
						}
					}
				}
			default:
				writes, failAt := 0, 2+rng.IntN(20)
				st.hook = func(Row) error {
					if writes++; writes == failAt {
						panic(crash{})
					}
					return nil
				}
			}
		}
		sp := open(t, p, cp)
		crashed := func() (crashed bool) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(crash); !ok {
						panic(r)
					}
					crashed = true
				}
			}()
			// Resume after the checkpoint, as the runtime does, cut into
			// batches differently each run.
			i := 0
			for i < len(recs) && !recs[i].Position.After(cp) {
				i++
			}
			for _, b := range split(rng, recs[i:], 150) {
				pos, err := sp.Process(context.Background(), consumers.Batch{ShardID: shard0, Records: b, Now: b[len(b)-1].ArrivalTime})
				if err != nil {
					t.Fatalf("process: %v", err)
				}
				if !pos.IsZero() {
					if pos.Compare(cp) < 0 {
						t.Fatalf("position went backwards: %s after %s", pos, cp)
					}
					cp = pos
				}
			}
			if _, err := sp.Flush(context.Background()); err != nil {
				t.Fatalf("flush: %v", err)
			}
			return false
		}()
		if !crashed {
			break
		}
		crashes++
	}
	if crashes < 3 {
		t.Fatalf("only %d crashes; the test did not exercise replays", crashes)
	}
	r := NewReader(st, ReaderConfig{Clock: func() time.Time { return t0.Add(time.Hour) }})
	a, e := queryAll(t, r, t0.Add(-10*time.Minute), t0.Add(time.Hour))
	checkAgainstOracle(t, oracle(evs), a, e)
	t.Logf("%d crashes", crashes)
}

func TestProcessor_DurablePositionStopsBeforeUnwrittenOpenWindows(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	recs := records(1,
		access(t0.Add(10*time.Second), "/a", "HIT", 200, 1), // 10:00
		access(t0.Add(70*time.Second), "/a", "HIT", 200, 1), // 10:01, wm 10:01:05 publishes 10:00
		access(t0.Add(71*time.Second), "/b", "HIT", 200, 1),
	)
	pos := process(t, sp, t0.Add(71*time.Second), recs...)
	// 10:00 is written; 10:01 is open in memory, so the durable point is
	// just before its first record.
	if pos != recs[0].Position {
		t.Fatalf("durable = %s, want %s", pos, recs[0].Position)
	}
	state, _, _ := st.LoadShard(context.Background(), shard0)
	if state.Pos != EncodePosition(recs[0].Position) {
		t.Errorf("saved progress = %s, want %s", state.Pos, EncodePosition(recs[0].Position))
	}
	if pos, err := sp.Flush(context.Background()); err != nil || pos != recs[2].Position {
		t.Errorf("Flush = %s, %v; want %s", pos, err, recs[2].Position)
	}
}

func TestProcessor_StaleOwnerCannotOverwriteNewerRows(t *testing.T) {
	st := NewMemoryStore()
	recs := records(1, access(t0, "/a", "HIT", 200, 1), access(t0.Add(time.Second), "/a", "HIT", 200, 1))
	a := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	process(t, a, t0, recs[0])
	// Lease moves: b reads both records and flushes.
	b := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	process(t, b, t0, recs...)
	if _, err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// a wakes up with its stale state.
	if _, err := a.Flush(context.Background()); !errors.Is(err, ErrStale) {
		t.Fatalf("stale flush: err = %v, want ErrStale", err)
	}
	res, _ := NewReader(st, ReaderConfig{}).Query(context.Background(), Query{Metric: "access", From: t0, To: t0.Add(time.Minute), IncludeOpen: true})
	if len(res.Rows) != 1 || res.Rows[0].Values["requests"] != 2 {
		t.Errorf("rows = %+v, want 2 requests", res.Rows)
	}
}

func TestProcessor_ShardEndPublishesEverything(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	recs := records(1, click(t0, "u1", "home"), impression(t0, "u1", "home"), impression(t0, "u2", "home"))
	if _, err := sp.Process(context.Background(), consumers.Batch{ShardID: shard0, Records: recs, Now: t0, ShardEnd: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := published(t, st, "engagement", t0, t0.Add(time.Minute))
	if len(res.Rows) != 1 {
		t.Fatalf("rows = %+v, want the window published at shard end", res.Rows)
	}
	v := res.Rows[0].Values
	if v["clicks"] != 1 || v["impressions"] != 2 || v["ctr"] != 0.5 || v["unique_users"] != 2 {
		t.Errorf("values = %v", v)
	}
	state, _, _ := st.LoadShard(context.Background(), shard0)
	if !state.Finished {
		t.Error("shard progress not marked finished")
	}
}

func TestProcessor_LagRowsPerProcessingMinute(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	now := t0.Add(30 * time.Second)
	b := consumers.Batch{ShardID: shard0, Records: records(1, access(t0, "/a", "HIT", 200, 1)), Now: now, MillisBehindLatest: 1500}
	if _, err := sp.Process(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	b = consumers.Batch{ShardID: shard0, Now: now.Add(time.Second), MillisBehindLatest: 200}
	if _, err := sp.Process(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	res := published(t, st, LagMetric, t0, t0.Add(time.Minute))
	if len(res.Rows) != 1 {
		t.Fatalf("lag rows = %+v", res.Rows)
	}
	v := res.Rows[0].Values
	if v["millis_behind_latest"] != 1500 || v["records"] != 1 || v["watermark_delay_ms"] != 36000 {
		t.Errorf("lag values = %v, want max 1500 behind, 1 record, watermark 36s behind", v)
	}
	if res.Rows[0].Dims["shard"] != shard0 {
		t.Errorf("dims = %v", res.Rows[0].Dims)
	}
}

func TestProcessor_WindowsLeftOpenByAShutdownArePublishedByTheNextOwner(t *testing.T) {
	st := NewMemoryStore()
	sp := open(t, newTestProcessor(t, st, Config{}), consumers.Position{})
	process(t, sp, t0.Add(20*time.Second), records(1, access(t0.Add(10*time.Second), "/a", "HIT", 200, 1))...)
	cp, err := sp.Flush(context.Background()) // graceful shutdown: 10:00 written open
	if err != nil {
		t.Fatal(err)
	}
	sp.Close()
	if n := len(published(t, st, "access", t0, t0.Add(time.Minute)).Rows); n != 0 {
		t.Fatalf("open window visible before publication: %d rows", n)
	}
	// The next owner only ever sees later records for another route.
	sp = open(t, newTestProcessor(t, st, Config{}), cp)
	process(t, sp, t0.Add(80*time.Second), records(2, access(t0.Add(70*time.Second), "/b", "MISS", 200, 1))...)
	res := published(t, st, "access", t0, t0.Add(time.Minute))
	if len(res.Rows) != 1 || res.Rows[0].Dims["route"] != "/a" || res.Rows[0].Values["requests"] != 1 {
		t.Fatalf("10:00 after the watermark passed: %+v, want /a published", res.Rows)
	}
	state, _, _ := st.LoadShard(context.Background(), shard0)
	if len(state.OpenRows) != 0 {
		t.Errorf("progress still lists open rows: %v", state.OpenRows)
	}
}

// A metric row lives for its window and more: its dimensions must not keep
// the records they came from alive (an event's strings share one copy of
// its whole record).
func TestProcessor_RowsDoNotKeepTheirRecords(t *testing.T) {
	sp := open(t, newTestProcessor(t, NewMemoryStore(), Config{FlushInterval: time.Hour}), consumers.Position{})
	rec := make([]byte, 64<<10)
	copy(rec[len(rec)-6:], "/r HIT")
	freed := weak.Make(&rec[0])
	e := access(t0, "", "", 200, 1)
	e.Route, e.Cache = unsafe.String(&rec[len(rec)-6], 2), unsafe.String(&rec[len(rec)-3], 3)
	e.URI = e.Route
	process(t, sp, t0, records(1, e)...)
	// A later batch, so that nothing of the first one is in use.
	process(t, sp, t0, records(2, access(t0, "/other", "MISS", 200, 1))...)
	e, rec = event.Event{}, nil
	runtime.GC()
	runtime.GC()
	if freed.Value() != nil {
		t.Fatal("a metric row keeps its 64 KiB record alive")
	}
	runtime.KeepAlive(sp) // its rows are what is checked
}
