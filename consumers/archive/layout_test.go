package archive

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
)

func TestObjectKey_FollowsTheHiveLayoutInEventTimeUTC(t *testing.T) {
	first := consumers.Position{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequence: 0}
	last := consumers.Position{SequenceNumber: "49590338271490256608559692540925702759324208523137515618", SubSequence: 12}
	// 2026-11-22T00:30:00+02:00 is 22:30 UTC the day before.
	ts := time.Date(2026, 11, 22, 0, 30, 0, 0, time.FixedZone("EET", 2*3600))
	tests := []struct {
		prefix, typ, want string
	}{
		{"", "click", "events/type=click/dt=2026-11-21/hour=22/shardId-000000000001_" + first.SequenceNumber + "-0_" + last.SequenceNumber + "-12.parquet"},
		{"lake/v1/", "access", "lake/v1/events/type=access/dt=2026-11-21/hour=22/shardId-000000000001_" + first.SequenceNumber + "-0_" + last.SequenceNumber + "-12.parquet"},
		{"/lake", "page view/x=1", "lake/events/type=page%20view%2Fx%3D1/dt=2026-11-21/hour=22/shardId-000000000001_" + first.SequenceNumber + "-0_" + last.SequenceNumber + "-12.parquet"},
	}
	for _, tt := range tests {
		got := ObjectKey(tt.prefix, PartitionOf(tt.typ, ts), "shardId-000000000001", first, last)
		if got != tt.want {
			t.Errorf("ObjectKey(%q, %q)\n got %s\nwant %s", tt.prefix, tt.typ, got, tt.want)
		}
		info, err := ParseObjectKey(tt.prefix, got)
		if err != nil {
			t.Fatalf("ParseObjectKey(%s): %v", got, err)
		}
		if info.Type != tt.typ || info.Date != "2026-11-21" || info.Hour != "22" || info.ShardID != "shardId-000000000001" ||
			info.First != first || info.Last != last {
			t.Errorf("ParseObjectKey(%s) = %+v", got, info)
		}
	}
}

func TestPartitionOf_HandlesTimesBeforeTheEpochAndFarFuture(t *testing.T) {
	tests := []struct {
		ts       time.Time
		dt, hour string
	}{
		{time.Date(1969, 12, 31, 23, 59, 59, 999e6, time.UTC), "1969-12-31", "23"},
		{time.Date(2262, 4, 12, 1, 0, 0, 0, time.UTC), "2262-04-12", "01"},
		{time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC), "9999-12-31", "23"},
	}
	for _, tt := range tests {
		p := PartitionOf("click", tt.ts)
		if p.Date() != tt.dt || p.HourString() != tt.hour {
			t.Errorf("PartitionOf(%v) = dt=%s hour=%s, want dt=%s hour=%s", tt.ts, p.Date(), p.HourString(), tt.dt, tt.hour)
		}
		// The buffer key must agree with the partition.
		k := partKeyOf("click", tt.ts.UnixMilli())
		if got := time.UnixMilli(k.hourMS).UTC(); !got.Equal(p.Hour) {
			t.Errorf("partKeyOf(%v) hour = %v, want %v", tt.ts, got, p.Hour)
		}
	}
}

func TestEscapePartitionValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"click", "click"},
		{"a.b_c-D9", "a.b_c-D9"},
		{"", "__HIVE_DEFAULT_PARTITION__"},
		{"a/b", "a%2Fb"},
		{"x=y", "x%3Dy"},
		{"100%", "100%25"},
		{"ü", "%C3%BC"},
		{"..", ".."},
	}
	for _, tt := range tests {
		if got := EscapePartitionValue(tt.in); got != tt.want {
			t.Errorf("EscapePartitionValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.in != "" {
			if back := UnescapePartitionValue(tt.want); back != tt.in {
				t.Errorf("UnescapePartitionValue(%q) = %q, want %q", tt.want, back, tt.in)
			}
		}
	}
}

func TestEscapePartitionValue_CutsLongValuesKeepingThemDistinct(t *testing.T) {
	a := strings.Repeat("/", 100) + "a"
	b := strings.Repeat("/", 100) + "b"
	ea, eb := EscapePartitionValue(a), EscapePartitionValue(b)
	if len(ea) > maxEscapedValue || len(eb) > maxEscapedValue {
		t.Fatalf("escaped lengths %d, %d exceed %d", len(ea), len(eb), maxEscapedValue)
	}
	if ea == eb {
		t.Fatalf("distinct long values escaped to the same %q", ea)
	}
	if i := strings.IndexByte(ea, '~'); i < 0 || strings.Count(ea[:i], "%")*3 != i {
		t.Errorf("cut value %q split an escape sequence", ea)
	}
	if EscapePartitionValue(a) != ea {
		t.Error("escaping is not deterministic")
	}
}

func TestParseObjectKey_RejectsForeignKeys(t *testing.T) {
	for _, key := range []string{
		"errors/dt=2026-11-22/shardId-1/1-0.json",
		"events/type=click/dt=2026-11-22/hour=10/notes.txt",
		"events/type=click/dt=2026-11-22/x.parquet",
		"events/type=click/dt=2026-11-22/hour=10/s_1-0.parquet",
		"events/type=click/dt=2026-11-22/hour=10/s_1-0_x-1.parquet",
		"events/type=click/dt=2026-11-22/hour=10/s_1-0_2--1.parquet",
	} {
		if _, err := ParseObjectKey("", key); !errors.Is(err, errNotArchiveKey) {
			t.Errorf("ParseObjectKey(%q) error = %v, want errNotArchiveKey", key, err)
		}
	}
}
