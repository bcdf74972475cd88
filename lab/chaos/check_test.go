package chaos

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/event"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func ms(v float64) *float64 { return &v }

// fixture is a small stream: clicks, impressions and access logs on two
// shards, one of them aggregated, plus one bad record.
func fixture() []consumers.Record {
	rec := func(shard, seq string, sub int64, e event.Event) consumers.Record {
		return consumers.Record{Position: consumers.Position{SequenceNumber: seq, SubSequence: sub}, ShardID: shard, Event: e}
	}
	return []consumers.Record{
		rec("s0", "100", 0, event.Event{ID: "a", Type: event.TypeClick, TS: t0.Add(time.Second), UserID: "u1", Placement: "home", Features: map[string]float64{"f1": 1, "f2": 0.5}}),
		rec("s0", "100", 1, event.Event{ID: "b", Type: event.TypeImpression, TS: t0.Add(2 * time.Second), UserID: "u1", Placement: "home", Features: map[string]float64{"f1": 1}}),
		rec("s0", "101", 0, event.Event{ID: "c", Type: event.TypeAccess, TS: t0.Add(3 * time.Second), Route: "/a", Cache: "HIT", Status: 200, RequestTimeMS: ms(10)}),
		rec("s1", "200", 0, event.Event{ID: "d", Type: event.TypeClick, TS: t0.Add(61 * time.Second), UserID: "u2", Placement: "feed", Features: map[string]float64{"f3": 2}}),
		rec("s1", "201", 0, event.Event{ID: "e", Type: event.TypeAccess, TS: t0.Add(62 * time.Second), Route: "/a", Cache: "expired", Status: 503, RequestTimeMS: ms(30)}),
		{Position: consumers.Position{SequenceNumber: "202"}, ShardID: "s1", ArrivalTime: t0, Data: []byte("{oops"), Err: errors.New("bad json")},
	}
}

// archiveOf is the correct archive of records.
func archiveOf(rs []consumers.Record) ([]archive.Row, []string) {
	var rows []archive.Row
	var dl []string
	for i := range rs {
		if rs[i].Err != nil {
			dl = append(dl, consumers.DeadLetterKey("p", rs[i]))
			continue
		}
		rows = append(rows, archive.RowOf(&rs[i]))
	}
	return rows, dl
}

func failed(cs []Check) []string {
	var out []string
	for _, c := range cs {
		if !c.OK {
			out = append(out, c.Name+": "+c.Got)
		}
	}
	return out
}

func TestCheckArchive_PassesExactlyOnceAndCatchesDuplicateLossAndExtra(t *testing.T) {
	rs := fixture()
	rows, dl := archiveOf(rs)
	if f := failed(CheckArchive(rs, rows, "p", dl)); len(f) > 0 {
		t.Fatalf("a correct archive fails: %v", f)
	}
	cases := map[string]struct {
		rows []archive.Row
		dl   []string
		want []string // failing check names
	}{
		"duplicate row": {rows: append(append([]archive.Row(nil), rows...), rows[2]), dl: dl,
			want: []string{"archive: rows", "archive: duplicate rows"}},
		"missing row": {rows: append(append([]archive.Row(nil), rows[:1]...), rows[2:]...), dl: dl,
			want: []string{"archive: rows", "archive: valid records missing"}},
		"row of another record": {rows: append(append([]archive.Row(nil), rows[1:]...), func() archive.Row {
			r := rows[0]
			r.SubSequenceNumber = 7
			return r
		}()), dl: dl, want: []string{"archive: valid records missing", "archive: rows not on the stream"}},
		"bad record archived instead of dead-lettered": {rows: append(append([]archive.Row(nil), rows...), archive.RowOf(&rs[5])), dl: nil,
			want: []string{"archive: rows", "archive: rows not on the stream", "archive: dead letters = bad records"}},
		"wrong content": {rows: func() []archive.Row {
			c := append([]archive.Row(nil), rows...)
			c[3].UserID = "u9"
			return c
		}(), dl: dl, want: []string{"archive: rows equal their event"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := failed(CheckArchive(rs, tc.rows, "p", tc.dl))
			if len(got) != len(tc.want) {
				t.Fatalf("failed checks %v, want %v", got, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w+":") {
					t.Errorf("failed check %d = %q, want %q", i, got[i], w)
				}
			}
		})
	}
}

func TestCheckVectors_DirectComputationAndPlantedDifferences(t *testing.T) {
	rs := fixture()
	at := t0.Add(time.Hour)
	want := DirectVectors(rs, at, HalfLife)
	if len(want) != 2 || want["u1"].Events != 2 || want["u2"].Events != 1 {
		t.Fatalf("direct vectors: %+v", want)
	}
	f := 1.0
	for _, x := range want["u1"].Features {
		if x.Name == "f1" {
			f = x.Clicks
		}
	}
	if exp := math.Exp2(-float64(at.Sub(t0.Add(time.Second))) / float64(HalfLife)); f != exp {
		t.Fatalf("u1 f1 clicks %v, want %v", f, exp)
	}
	clone := func() map[string]*vectors.Vector {
		out := map[string]*vectors.Vector{}
		for k, v := range want {
			c := *v
			c.Features = append([]vectors.Feature(nil), v.Features...)
			out[k] = &c
		}
		return out
	}
	if fl := failed(CheckVectors(want, clone(), 2)); len(fl) > 0 {
		t.Fatalf("equal vectors fail: %v", fl)
	}
	// Within tolerance passes, a counted-twice event does not.
	near := clone()
	near["u1"].Features[0].Clicks *= 1 + VectorTolerance/10
	if fl := failed(CheckVectors(want, near, 2)); len(fl) > 0 {
		t.Fatalf("a difference within tolerance fails: %v", fl)
	}
	twice := clone()
	twice["u2"].Events++
	twice["u2"].Features[0].Clicks *= 2
	if fl := failed(CheckVectors(want, twice, 2)); len(fl) != 2 {
		t.Fatalf("event applied twice: failed %v, want events and values", fl)
	}
	lost := clone()
	delete(lost, "u2")
	if fl := failed(CheckVectors(want, lost, 1)); len(fl) != 2 {
		t.Fatalf("lost user: failed %v, want users stored and users missing", fl)
	}
}

func TestCheckMetrics_ExactCountsAndPlantedDifferences(t *testing.T) {
	rs := fixture()
	want := DirectMetrics(rs)
	if len(want) != 4 {
		t.Fatalf("%d groups, want 4: %v", len(want), keysOf(want))
	}
	a := want[metricKey("access", t0.Add(time.Minute), "/a")]
	if a == nil || a.Counts["requests"] != 1 || a.Counts["cache_expired"] != 1 || a.Counts["status_5xx"] != 1 || a.Counts["cache_hit"] != 0 {
		t.Fatalf("access group of minute 1: %+v", a)
	}
	// The result the consumer should give.
	rows := map[string][]metrics.ResultRow{}
	for _, g := range want {
		vals := map[string]float64{}
		for k, v := range g.Counts {
			vals[k] = v
		}
		dim := "route"
		if g.Metric == "engagement" {
			dim = "placement"
			vals["unique_users"] = float64(len(g.Users))
		} else {
			for _, q := range []string{"latency_p50_ms", "latency_p95_ms", "latency_p99_ms"} {
				vals[q] = g.Latencies[0] * 1.005
			}
		}
		rows[g.Metric] = append(rows[g.Metric], metrics.ResultRow{WindowStart: g.Window, Dims: map[string]string{dim: g.Dim}, Values: vals})
	}
	if fl := failed(CheckMetrics(want, rows)); len(fl) > 0 {
		t.Fatalf("exact metrics fail: %v", fl)
	}
	rows["engagement"][0].Values["clicks"]++ // a replayed click counted twice
	if fl := failed(CheckMetrics(want, rows)); len(fl) != 1 || !strings.HasPrefix(fl[0], "metrics: exact counts") {
		t.Fatalf("double count: failed %v", fl)
	}
	rows["engagement"][0].Values["clicks"]--
	rows["access"] = rows["access"][1:] // a lost window
	if fl := failed(CheckMetrics(want, rows)); len(fl) != 2 {
		t.Fatalf("lost window: failed %v, want windows × groups and groups missing", fl)
	}
}

func TestCaughtUp_NeedsFinishedParentsAndCheckpointsAtTheEnd(t *testing.T) {
	tr := &Truth{Shards: []ShardInfo{{ID: "s0"}, {ID: "s1", Open: true}, {ID: "s2", Open: true}}, Records: fixture()}
	last := lastPositions(tr)
	ls := []leases.Lease{
		{ShardID: "s0", Finished: true},
		{ShardID: "s1", Checkpoint: consumers.Position{SequenceNumber: "202"}},
	}
	if b := caughtUp(ls, tr, last); len(b) != 0 {
		t.Fatalf("behind %v", b)
	}
	ls[0].Finished = false
	ls[1].Checkpoint = consumers.Position{SequenceNumber: "201"}
	if b := caughtUp(ls, tr, last); len(b) != 2 {
		t.Fatalf("behind %v, want s0 and s1", b)
	}
}
