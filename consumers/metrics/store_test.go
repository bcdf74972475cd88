package metrics

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

// testStore runs the Store contract against one implementation.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	pos := func(i int) string { return EncodePosition(consumers.Position{SequenceNumber: seq(i)}) }
	row := func(dims string, win time.Time, shard string, p int) Row {
		return Row{
			RowKey:   RowKey{Metric: "access", DimsKey: "route=" + dims, Window: win, Shard: shard},
			Dims:     map[string]string{"route": dims},
			Pos:      pos(p),
			Updated:  t0.Add(time.Hour),
			Expires:  win.Add(720 * time.Hour),
			Counts:   map[string]int64{"requests": int64(p), "cache_hit": 0},
			Floats:   map[string]float64{"sum": 1.5e-3},
			Sketches: map[string][]byte{"request_time_ms": {1, 2, 3}},
			Distinct: map[string][]byte{"user_id": {4, 5}},
		}
	}

	t.Run("rows round-trip and load by key", func(t *testing.T) {
		s := newStore(t)
		r1 := row("/a", t0, "s-1", 5)
		r2 := row("/a#x&y=%", t0.Add(time.Minute), "s-2", 6)
		r2.Open = true
		if err := s.PutRows(ctx, []Row{r1, r2}); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadRows(ctx, []RowKey{r2.RowKey, r1.RowKey, {Metric: "access", DimsKey: "route=/none", Window: t0, Shard: "s-1"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("loaded %d rows, want 2", len(got))
		}
		for _, g := range got {
			want := r1
			if g.Shard == "s-2" {
				want = r2
			}
			g.Window, g.Updated, g.Expires = g.Window.UTC(), g.Updated.UTC(), g.Expires.UTC()
			if !reflect.DeepEqual(g, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", g, want)
			}
		}
	})

	t.Run("overwrites, never goes back", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutRows(ctx, []Row{row("/a", t0, "s-1", 5)}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRows(ctx, []Row{row("/a", t0, "s-1", 9)}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRows(ctx, []Row{row("/a", t0, "s-1", 9)}); err != nil {
			t.Fatalf("same position again: %v", err)
		}
		err := s.PutRows(ctx, []Row{row("/a", t0, "s-1", 7)})
		if !errors.Is(err, ErrStale) {
			t.Fatalf("older position: err = %v, want ErrStale", err)
		}
		got, _ := s.LoadRows(ctx, []RowKey{row("/a", t0, "s-1", 0).RowKey})
		if len(got) != 1 || got[0].Counts["requests"] != 9 {
			t.Errorf("row = %+v, want the position-9 version", got)
		}
		// Rows without a position (consumer_lag) are written unconditionally.
		r := row("/a", t0, "s-1", 0)
		r.Pos = ""
		if err := s.PutRows(ctx, []Row{r}); err != nil {
			t.Errorf("unconditional row: %v", err)
		}
	})

	t.Run("query by window range, all shards", func(t *testing.T) {
		s := newStore(t)
		var rows []Row
		for m := 0; m < 5; m++ {
			for _, sh := range []string{"s-1", "s-2"} {
				rows = append(rows, row("/a", t0.Add(time.Duration(m)*time.Minute), sh, m+1))
			}
		}
		rows = append(rows, row("/b", t0, "s-1", 1))
		if err := s.PutRows(ctx, rows); err != nil {
			t.Fatal(err)
		}
		got, err := s.QueryRows(ctx, "access", "route=/a", t0.Add(time.Minute), t0.Add(3*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var wins []string
		for _, g := range got {
			wins = append(wins, g.Window.UTC().Format("15:04")+" "+g.Shard)
		}
		want := []string{"10:01 s-1", "10:01 s-2", "10:02 s-1", "10:02 s-2"}
		if !reflect.DeepEqual(wins, want) {
			t.Errorf("windows = %v, want %v", wins, want)
		}
	})

	t.Run("dims index", func(t *testing.T) {
		s := newStore(t)
		exp := time.Now().Add(time.Hour)
		if err := s.PutDims(ctx, "access", []map[string]string{{"route": "/a"}, {"route": "/b"}}, exp); err != nil {
			t.Fatal(err)
		}
		if err := s.PutDims(ctx, "access", []map[string]string{{"route": "/a"}}, exp); err != nil {
			t.Fatal(err)
		}
		if err := s.PutDims(ctx, "engagement", []map[string]string{{"placement": "home"}}, exp); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListDims(ctx, "access")
		if err != nil {
			t.Fatal(err)
		}
		if want := []map[string]string{{"route": "/a"}, {"route": "/b"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("dims = %v, want %v", got, want)
		}
	})

	t.Run("shard progress", func(t *testing.T) {
		s := newStore(t)
		if _, ok, err := s.LoadShard(ctx, "s-1"); ok || err != nil {
			t.Fatalf("empty store: ok %v err %v", ok, err)
		}
		st := ShardState{Shard: "s-1", Pos: pos(10), MaxEventTime: t0.Add(time.Minute), IdleWatermark: t0,
			Dropped: map[string]int64{"access": 3, "engagement": 0}, MillisBehindLatest: 1200, Updated: t0.Add(time.Hour),
			OpenRows: []RowKey{{Metric: "access", DimsKey: "route=/a", Window: t0, Shard: "s-1"}, {Metric: "engagement", DimsKey: "placement=x%23y", Window: t0.Add(time.Minute), Shard: "s-1"}}}
		if err := s.SaveShard(ctx, st); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LoadShard(ctx, "s-1")
		if err != nil || !ok {
			t.Fatalf("load: ok %v err %v", ok, err)
		}
		got.MaxEventTime, got.IdleWatermark, got.Updated = got.MaxEventTime.UTC(), got.IdleWatermark.UTC(), got.Updated.UTC()
		if !reflect.DeepEqual(got, st) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, st)
		}
		older := st
		older.Pos = pos(9)
		if err := s.SaveShard(ctx, older); !errors.Is(err, ErrStale) {
			t.Errorf("older progress: err = %v, want ErrStale", err)
		}
		st2 := ShardState{Shard: "s-2", Finished: true, Updated: t0, Dropped: map[string]int64{}}
		if err := s.SaveShard(ctx, st2); err != nil {
			t.Fatal(err)
		}
		all, err := s.ListShards(ctx)
		if err != nil || len(all) != 2 || all[0].Shard != "s-1" || !all[1].Finished {
			t.Errorf("list = %+v, %v", all, err)
		}
	})

	t.Run("many rows in one put and load", func(t *testing.T) {
		s := newStore(t)
		var rows []Row
		var keys []RowKey
		for i := 0; i < 230; i++ {
			r := row(fmt.Sprintf("/r%d", i), t0, "s-1", i+1)
			rows = append(rows, r)
			keys = append(keys, r.RowKey)
		}
		if err := s.PutRows(ctx, rows); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadRows(ctx, keys)
		if err != nil || len(got) != 230 {
			t.Fatalf("loaded %d rows, err %v; want 230", len(got), err)
		}
	})
}

func TestMemoryStore_Contract(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemoryStore() })
}

func TestDynamoStore_Contract(t *testing.T) {
	c := testenv.Clients(t)
	testStore(t, func(t *testing.T) Store {
		return NewDynamoStore(c.DynamoDB, testenv.Table(t, c, setup.MetricsTable))
	})
}

func TestEncodePosition_SortsLikePositions(t *testing.T) {
	ps := []consumers.Position{
		{SequenceNumber: "9", SubSequence: 0},
		{SequenceNumber: "9", SubSequence: 3},
		{SequenceNumber: "10", SubSequence: 0},
		{SequenceNumber: "010", SubSequence: 1},
		{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequence: 0},
		{SequenceNumber: "49590338271490256608559692538361571095921575989136588899", SubSequence: 0},
		{SequenceNumber: "149590338271490256608559692538361571095921575989136588899", SubSequence: 0},
	}
	for i := 1; i < len(ps); i++ {
		a, b := EncodePosition(ps[i-1]), EncodePosition(ps[i])
		if !(a < b) {
			t.Errorf("%s !< %s", a, b)
		}
	}
	for _, p := range ps {
		got, err := DecodePosition(EncodePosition(p))
		if err != nil || got.Compare(p) != 0 {
			t.Errorf("round trip %v: %v, %v", p, got, err)
		}
	}
	if EncodePosition(consumers.Position{}) != "" {
		t.Error("zero position must encode as empty")
	}
	for _, bad := range []string{"x", "003123", "0031234/1"} {
		if _, err := DecodePosition(bad); err == nil {
			t.Errorf("DecodePosition(%q): no error", bad)
		}
	}
}
