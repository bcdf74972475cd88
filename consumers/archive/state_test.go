package archive

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/clickstream-go/clickstream/consumers"
)

func TestShardState_RoundTrips(t *testing.T) {
	seq := func(i int) string { return fmt.Sprintf("4959033827149025660855969253836157109592157598913%07d", i) }
	many := make([]string, 200)
	for i := range many {
		many[i] = ObjectKey("", PartitionOf("click", epoch.Add(0)), "shardId-000000000003",
			consumers.Position{SequenceNumber: seq(i)}, consumers.Position{SequenceNumber: seq(i + 1), SubSequence: 3})
	}
	for _, st := range []shardState{
		{Written: consumers.Position{SequenceNumber: seq(7), SubSequence: 2}},
		{Written: consumers.Position{SequenceNumber: seq(7)}, Pending: &pendingFlush{To: consumers.Position{SequenceNumber: seq(9), SubSequence: 1}, Keys: []string{"a", "b"}}},
		{Pending: &pendingFlush{To: consumers.Position{SequenceNumber: seq(9)}, Keys: many}},
	} {
		b, err := st.marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := unmarshalState(b)
		if err != nil {
			t.Fatalf("unmarshal %q: %v", b, err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("round trip: got %+v, want %+v", got, st)
		}
		if st.Pending != nil && len(st.Pending.Keys) == len(many) && len(b) > 8*1024 {
			t.Errorf("200 pending keys take %d bytes; want them compressed below 8 KiB", len(b))
		}
	}
}

func TestShardState_ZeroIsNothing(t *testing.T) {
	b, err := shardState{}.marshal()
	if err != nil || b != nil {
		t.Fatalf("zero state marshals to %q, %v; want nil", b, err)
	}
	st, err := unmarshalState(nil)
	if err != nil || !reflect.DeepEqual(st, shardState{}) {
		t.Fatalf("unmarshal(nil) = %+v, %v", st, err)
	}
}

func TestShardState_RejectsGarbageAndNewerVersions(t *testing.T) {
	for _, in := range []string{`{`, `{"v":2,"written":{}}`, `{"v":1,"pending":{"keys":["k"]}}`, "\x1f\x8bnot gzip", `[]`} {
		_, err := unmarshalState([]byte(in))
		if !errors.Is(err, errBadState) {
			t.Errorf("unmarshalState(%q) = %v, want errBadState", in, err)
		}
		if err != nil && !strings.Contains(err.Error(), "archive") {
			t.Errorf("error %q does not say whose state it is", err)
		}
	}
}
