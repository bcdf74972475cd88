package vectors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

// The store contract: the same cases against the in-memory store (which
// interprets dynamoStore's requests with DynamoDB's decimal rules) and
// against DynamoDB Local. What memStore assumes about DynamoDB is checked
// here against the real thing.
func TestStoreContract_Memory(t *testing.T) {
	runStoreContract(t, func(t *testing.T) store { return newMemStore() })
}

func TestStoreContract_DynamoDB(t *testing.T) {
	c := testenv.Clients(t)
	runStoreContract(t, func(t *testing.T) store {
		return &dynamoStore{db: c.DynamoDB, table: testenv.Table(t, c, setup.VectorsTable)}
	})
}

func pos(seq string, sub int64) leases.Position {
	return leases.Position{SequenceNumber: seq, SubSequence: sub}
}

func runStoreContract(t *testing.T, newStore func(t *testing.T) store) {
	ctx := context.Background()
	const hl = 3600_000
	lm := gridLandmark(testNow.UnixMilli(), hl)
	d := func(first, last leases.Position, feats ...featDelta) delta {
		return delta{landmark: lm, events: int64(len(feats)), first: first, last: last, feats: feats}
	}
	created := func(t *testing.T, st store) *item {
		next, _ := rewrite(nil, "u", "s1", hl, d(pos("100", 0), pos("100", 2), featDelta{"a", 1.5, 0}, featDelta{"b", 0, 0.25}), 100, 90)
		if got, err := st.put(ctx, putReq{next: next, create: true}); err != nil || got != nil {
			t.Fatalf("create: %v, %v", got, err)
		}
		return next
	}

	t.Run("AddOnMissingItemConflictsWithNoItem", func(t *testing.T) {
		st := newStore(t)
		got, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, d: d(pos("1", 0), pos("1", 0), featDelta{"a", 1, 0}), room: 10})
		if !errors.Is(err, errConflict) || got != nil {
			t.Fatalf("got %v, %v; want conflict without item", got, err)
		}
		if it, err := st.get(ctx, "u"); err != nil || it != nil {
			t.Fatalf("get after failed add: %v, %v", it, err)
		}
	})

	t.Run("CreateThenCreateAgainConflictsWithTheItem", func(t *testing.T) {
		st := newStore(t)
		created(t, st)
		next, _ := rewrite(nil, "u", "s1", hl, d(pos("5", 0), pos("5", 0), featDelta{"z", 9, 9}), 100, 90)
		got, err := st.put(ctx, putReq{next: next, create: true})
		if !errors.Is(err, errConflict) || got == nil || got.Clicks["a"] != 1.5 || got.Guards["s1"] != encodeGuard(pos("100", 2)) {
			t.Fatalf("got %+v, %v; want conflict returning the existing item", got, err)
		}
		if !got.HasMaps || got.Version != 1 || got.Landmark != lm || got.HalfLife != hl || got.Imps["a"] != 0 || got.Clicks["b"] != 0 {
			t.Fatalf("item %+v", got)
		}
	})

	t.Run("AddAppliesExactSumsAndMovesTheGuard", func(t *testing.T) {
		st := newStore(t)
		created(t, st)
		_, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 98,
			d: d(pos("100", 3), pos("101", 0), featDelta{"a", 0.1, 0.2}, featDelta{"c", 1e-19, 0}, featDelta{"d", 123456789012345.678, 3})})
		if err != nil {
			t.Fatal(err)
		}
		it, err := st.get(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		if it.Clicks["a"] != quantize(1.5+quantize(0.1)) || it.Imps["a"] != quantize(0.2) || it.Clicks["c"] != 1e-19 ||
			it.Clicks["d"] != 123456789012345.678 || it.Imps["c"] != 0 {
			t.Fatalf("values %v / %v", it.Clicks, it.Imps)
		}
		if it.Events != 5 || it.Version != 2 || it.Guards["s1"] != encodeGuard(pos("101", 0)) {
			t.Fatalf("item %+v", it)
		}
		// Another shard has its own guard.
		if _, err := st.add(ctx, addReq{user: "u", shard: "s2", halfLife: hl, room: 98, d: d(pos("7", 0), pos("7", 0), featDelta{"a", 1, 0})}); err != nil {
			t.Fatal(err)
		}
		if it, _ := st.get(ctx, "u"); it.Guards["s2"] != encodeGuard(pos("7", 0)) || it.Guards["s1"] != encodeGuard(pos("101", 0)) {
			t.Fatalf("guards %v", it.Guards)
		}
	})

	t.Run("AddAtOrBeforeTheGuardConflicts", func(t *testing.T) {
		st := newStore(t)
		created(t, st)
		for _, first := range []leases.Position{pos("100", 2), pos("100", 0), pos("99", 5), pos("0100", 1)} {
			got, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 98, d: d(first, pos("200", 0), featDelta{"a", 1, 0})})
			if !errors.Is(err, errConflict) || got == nil || got.Clicks["a"] != 1.5 {
				t.Fatalf("first %v: %+v, %v; want conflict with the item", first, got, err)
			}
		}
		if _, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 98, d: d(pos("100", 3), pos("100", 3), featDelta{"a", 1, 0})}); err != nil {
			t.Fatalf("the next sub-record must apply: %v", err)
		}
	})

	t.Run("AddWithAnotherLandmarkHalfLifeOrNoRoomConflicts", func(t *testing.T) {
		st := newStore(t)
		created(t, st)
		other := d(pos("200", 0), pos("200", 0), featDelta{"a", 1, 0})
		other.landmark = lm + EpochHalfLives*hl
		for name, r := range map[string]addReq{
			"landmark":  {user: "u", shard: "s1", halfLife: hl, room: 98, d: other},
			"half-life": {user: "u", shard: "s1", halfLife: 2 * hl, room: 98, d: d(pos("200", 0), pos("200", 0), featDelta{"a", 1, 0})},
			"room":      {user: "u", shard: "s1", halfLife: hl, room: 1, d: d(pos("200", 0), pos("200", 0), featDelta{"a", 1, 0})},
		} {
			if got, err := st.add(ctx, r); !errors.Is(err, errConflict) || got == nil {
				t.Errorf("%s: %v, %v; want conflict", name, got, err)
			}
		}
		if _, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 2, d: d(pos("200", 0), pos("200", 0), featDelta{"a", 1, 0})}); err != nil {
			t.Errorf("room == size must pass: %v", err)
		}
	})

	t.Run("RewriteIsConditionalOnTheVersion", func(t *testing.T) {
		st := newStore(t)
		cur := created(t, st)
		next, _ := rewrite(cur, "u", "s1", hl, delta{landmark: lm + EpochHalfLives*hl, events: 1, first: pos("300", 0), last: pos("300", 0),
			feats: []featDelta{{"a", 1, 0}}}, 100, 90)
		if got, err := st.put(ctx, putReq{next: next, prevVersion: cur.Version + 1}); !errors.Is(err, errConflict) || got == nil || got.Version != 1 {
			t.Fatalf("stale version: %v, %v", got, err)
		}
		if _, err := st.put(ctx, putReq{next: next, prevVersion: cur.Version}); err != nil {
			t.Fatal(err)
		}
		it, _ := st.get(ctx, "u")
		if it.Landmark != lm+EpochHalfLives*hl || it.Version != 2 || it.Events != 3 {
			t.Fatalf("after rewrite %+v", it)
		}
		if want := quantize(1 + 1.5/256); math.Abs(it.Clicks["a"]-want) > 1e-15 {
			t.Fatalf("rebased a = %v, want %v", it.Clicks["a"], want)
		}
		if _, err := st.put(ctx, putReq{next: next, prevVersion: cur.Version}); !errors.Is(err, errConflict) {
			t.Fatalf("second rewrite with the old version: %v", err)
		}
	})

	t.Run("AddOfTheMostFeaturesOneExpressionHoldsSucceeds", func(t *testing.T) {
		st := newStore(t)
		created(t, st)
		var feats []featDelta
		for i := range maxAddFeatures {
			feats = append(feats, featDelta{fmt.Sprintf("feature:%03d", i), float64(i) + 0.125, 1})
		}
		if _, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 1000, d: d(pos("200", 0), pos("200", 0), feats...)}); err != nil {
			t.Fatal(err)
		}
		it, _ := st.get(ctx, "u")
		if it.features() != maxAddFeatures+2 || it.Clicks["feature:139"] != 139.125 || it.Imps["a"] != 0 {
			t.Fatalf("%d features, feature:139 = %v", it.features(), it.Clicks["feature:139"])
		}
		feats = append(feats, featDelta{"one-too-many", 1, 1})
		if _, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 1000, d: d(pos("201", 0), pos("201", 0), feats...)}); !errors.Is(err, errNeedRewrite) {
			t.Fatalf("err = %v, want errNeedRewrite", err)
		}
	})

	t.Run("FeatureNamesAreDataNotPaths", func(t *testing.T) {
		st := newStore(t)
		created(t, st)
		odd := []string{"a.b", "x[0]", "#c", ":i", "with space", "ünï©ødé", "user_id", "c", strings.Repeat("long", 64)}
		var feats []featDelta
		for i, name := range odd {
			feats = append(feats, featDelta{name, float64(i + 1), 0})
		}
		slices.SortFunc(feats, func(a, b featDelta) int { return strings.Compare(a.name, b.name) })
		if _, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 100, d: d(pos("200", 0), pos("200", 0), feats...)}); err != nil {
			t.Fatal(err)
		}
		it, _ := st.get(ctx, "u")
		next, _ := rewrite(it, "u", "s1", hl, d(pos("201", 0), pos("201", 0), feats...), 100, 90)
		if _, err := st.put(ctx, putReq{next: next, prevVersion: it.Version}); err != nil {
			t.Fatal(err)
		}
		it, _ = st.get(ctx, "u")
		for i, name := range odd {
			if it.Clicks[name] != 2*float64(i+1) {
				t.Errorf("%q = %v, want %v", name, it.Clicks[name], 2*float64(i+1))
			}
		}
		if it.UserID != "u" {
			t.Errorf("a feature named user_id clobbered the key: %+v", it)
		}
	})

	t.Run("SumBeyond38DigitsAsksForARewrite", func(t *testing.T) {
		st := newStore(t)
		next, _ := rewrite(nil, "u", "s1", hl, d(pos("1", 0), pos("1", 0), featDelta{"a", 5e18, 0}), 100, 90)
		if _, err := st.put(ctx, putReq{next: next, create: true}); err != nil {
			t.Fatal(err)
		}
		it, _ := st.get(ctx, "u")
		if it.Clicks["a"] != 999999999999999999 {
			t.Fatalf("saturated value %v", it.Clicks["a"])
		}
		_, err := st.add(ctx, addReq{user: "u", shard: "s1", halfLife: hl, room: 99, d: d(pos("2", 0), pos("2", 0), featDelta{"a", 1.1, 0})})
		if !errors.Is(err, errNeedRewrite) {
			t.Fatalf("err = %v, want errNeedRewrite", err)
		}
		if it2, _ := st.get(ctx, "u"); it2.Version != it.Version || it2.Guards["s1"] != it.Guards["s1"] {
			t.Fatal("a rejected add must change nothing")
		}
	})
}
