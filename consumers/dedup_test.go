package consumers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/event"
)

func TestDedupWindow_SeesACopyWithinTheWindowOnly(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		maxAge    time.Duration
		maxIDs    int
		between   int           // other events between the original and its copy
		gap       time.Duration // arrival of the copy after the original
		wantDup   bool
		wantInWin int
	}{
		{"copy right after", time.Minute, 100, 0, 0, true, 1},
		{"copy after others", time.Minute, 100, 50, time.Second, true, 51},
		{"copy older than the window", time.Minute, 100, 0, 61 * time.Second, false, 1},
		{"copy past the id bound", time.Minute, 10, 10, time.Second, false, 10},
		{"copy at the id bound", time.Minute, 11, 10, time.Second, true, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewDedupWindow(tc.maxAge, tc.maxIDs)
			if w.Seen("orig", t0) {
				t.Fatal("first sight reported as seen")
			}
			for i := range tc.between {
				if w.Seen(fmt.Sprint("other-", i), t0.Add(time.Millisecond)) {
					t.Fatalf("distinct id %d reported as seen", i)
				}
			}
			if got := w.Seen("orig", t0.Add(tc.gap)); got != tc.wantDup {
				t.Fatalf("copy seen = %v, want %v", got, tc.wantDup)
			}
			if w.Len() != tc.wantInWin {
				t.Fatalf("window holds %d ids, want %d", w.Len(), tc.wantInWin)
			}
		})
	}
}

func TestDedupWindow_StaysBoundedOverALongRun(t *testing.T) {
	w := NewDedupWindow(time.Hour, 1000)
	t0 := time.Now()
	for i := range 100_000 {
		w.Seen(fmt.Sprint(i), t0)
	}
	if w.Len() != 1000 || len(w.ids) != 1000 || cap(w.ring) > 1000 {
		t.Fatalf("window of %d ids, map %d, ring of %d: not bounded", w.Len(), len(w.ids), cap(w.ring))
	}
	// The last 1000 are still recognised, the one before is not.
	if !w.Seen("99999", t0) || !w.Seen("99000", t0) || w.Seen("98999", t0) {
		t.Fatal("window lost its most recent ids or kept an evicted one")
	}
}

func TestDedupWindow_MarksCopiesButNotBadRecordsOrEventsWithoutID(t *testing.T) {
	now := time.Now()
	rec := func(id string, err error) Record {
		return Record{Event: event.Event{ID: id}, Err: err, ArrivalTime: now}
	}
	rs := []Record{rec("a", nil), rec("b", nil), rec("a", nil), rec("", nil), rec("", nil), rec("b", errors.New("bad")), rec("b", nil)}
	w := NewDedupWindow(time.Minute, 100)
	if n := w.Mark(rs); n != 2 {
		t.Fatalf("marked %d, want 2", n)
	}
	want := []bool{false, false, true, false, false, false, true}
	for i, r := range rs {
		if r.Duplicate != want[i] {
			t.Fatalf("record %d Duplicate = %v, want %v", i, r.Duplicate, want[i])
		}
		if r.Applies() == (want[i] || r.Err != nil) {
			t.Fatalf("record %d Applies = %v", i, r.Applies())
		}
	}
	var nilw *DedupWindow
	if nilw.Mark(rs) != 0 || nilw.Seen("a", now) || NewDedupWindow(0, 10) != nil || NewDedupWindow(time.Minute, 0) != nil {
		t.Fatal("a disabled window must treat nothing as seen")
	}
}

func BenchmarkDedupWindow_Seen(b *testing.B) {
	w := NewDedupWindow(time.Minute, DefaultDedupMaxIDs)
	ids := make([]string, 1<<18) // more than the window holds: every lookup misses, inserts and evicts
	for i := range ids {
		ids[i] = fmt.Sprintf("01JD3%021d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Seen(ids[i&(len(ids)-1)], now)
		i++
	}
}
