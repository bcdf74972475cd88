package event

import (
	"sort"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestPartitionKey_UserIDElseID(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{Event{UserID: "u-1", ID: "id-1"}, "u-1"},
		{Event{ID: "id-1"}, "id-1"},
		{Event{}, ""},
	}
	for _, tt := range tests {
		if got := tt.e.PartitionKey(); got != tt.want {
			t.Errorf("%+v.PartitionKey() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestNewID_UniqueSortableULIDs(t *testing.T) {
	const n = 10000
	ids := make([]string, n)
	seen := make(map[string]bool, n)
	before := time.Now().Add(-time.Millisecond)
	for i := range ids {
		ids[i] = NewID()
		if seen[ids[i]] {
			t.Fatalf("duplicate id %s", ids[i])
		}
		seen[ids[i]] = true
	}
	if !sort.StringsAreSorted(ids) {
		t.Error("ids made in sequence are not sorted")
	}
	u, err := ulid.ParseStrict(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if ts := ulid.Time(u.Time()); ts.Before(before) || ts.After(time.Now()) {
		t.Errorf("ULID time %v is not now", ts)
	}
}

func TestClassifyCache(t *testing.T) {
	tests := map[string]string{
		"HIT": "HIT", "hit": "HIT", " Hit ": "HIT",
		"MISS": "MISS", "miss": "MISS",
		"EXPIRED": "EXPIRED", "expired": "EXPIRED",
		"STALE": "OTHER", "UPDATING": "OTHER", "REVALIDATED": "OTHER", "BYPASS": "OTHER", "bypass": "OTHER", "WEIRD": "OTHER",
		"-": "", "": "", "  ": "",
	}
	for in, want := range tests {
		if got := ClassifyCache(in); got != want {
			t.Errorf("ClassifyCache(%q) = %q, want %q", in, got, want)
		}
	}
}
