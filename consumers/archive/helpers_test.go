package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// epoch is the event time the test data is centred on.
var epoch = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// seqOf renders a Kinesis-like 56-digit sequence number.
func seqOf(i int) string {
	return fmt.Sprintf("4959033827149025660855969253836157109592157598%010d", i)
}

// genEvents returns n raw events: clicks, impressions and access logs over
// five event-time hours, some late (a day old), some of an unknown type with
// characters that need escaping, and about 1 in 15 bad (invalid JSON,
// missing user_id, wrong type).
func genEvents(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([][]byte, n)
	for i := range out {
		ts := epoch.Add(time.Duration(rng.IntN(5*3600*1000)-2*3600*1000) * time.Millisecond)
		if rng.IntN(20) == 0 {
			ts = ts.Add(-30 * time.Hour) // late
		}
		rfc := ts.Format("2006-01-02T15:04:05.000Z07:00")
		var s string
		switch k := rng.IntN(15); {
		case k == 0:
			switch rng.IntN(3) {
			case 0:
				s = `{"type":"click","ts":"` + rfc + `","user_id":` // truncated JSON
			case 1:
				s = fmt.Sprintf(`{"type":"click","ts":%q,"item_id":"a-%d"}`, rfc, i) // no user_id
			default:
				s = fmt.Sprintf(`{"type":"access","ts":%q,"status":"ok"}`, rfc) // wrong type
			}
		case k <= 6:
			s = fmt.Sprintf(`{"v":1,"id":"c-%d","type":"click","ts":%q,"user_id":"u-%d","session_id":"s-%d","item_id":"a-%d","app":"ios","placement":"home_feed","position":%d,"features":{"cat:sports":1,"tag:t%d":0.5},"attrs":{"ab_bucket":"B"},"received_at":%d}`,
				i, rfc, rng.IntN(50), rng.IntN(9), rng.IntN(100), rng.IntN(10), rng.IntN(5), ts.Add(time.Second).UnixMilli())
		case k <= 10:
			s = fmt.Sprintf(`{"id":"m-%d","type":"impression","ts":%q,"user_id":"u-%d","item_id":"a-%d","placement":"search","features":{"cat:news":0.25}}`,
				i, rfc, rng.IntN(50), rng.IntN(100))
		case k <= 13:
			s = fmt.Sprintf(`{"id":"x-%d","type":"access","ts":%d,"host":"api-%d","method":"GET","uri":"/api/items/%d?x=1","route":"/api/items/:id","status":%d,"cache":"%s","request_time_ms":%g,"bytes":%d,"user_agent":"ua/1.0"}`,
				i, ts.UnixMilli(), rng.IntN(3), rng.IntN(1000), []int{200, 304, 404, 500}[rng.IntN(4)], []string{"HIT", "MISS", "EXPIRED", "-"}[rng.IntN(4)], float64(rng.IntN(5000))/10, rng.IntN(100000))
		default:
			s = fmt.Sprintf(`{"id":"p-%d","type":"page view/x=1","ts":%q,"user_id":"u-%d","custom":{"deep":[1,{"a":"b"}]},"zz":null,"another":"field"}`,
				i, rfc, rng.IntN(50))
		}
		out[i] = []byte(s)
	}
	return out
}

// recordsOf turns raw events into shard records as the runtime would hand
// them: decoded, positions increasing, some packed several to a Kinesis
// record (sub-sequences), arrival times increasing.
func recordsOf(shardID string, events [][]byte, seed uint64) []consumers.Record {
	rng := rand.New(rand.NewPCG(seed, 11))
	recs := make([]consumers.Record, 0, len(events))
	seq, sub, left := 0, 0, 0
	arrival := epoch.Add(time.Hour)
	for _, data := range events {
		if left == 0 {
			seq += 1 + rng.IntN(3)
			sub = 0
			left = 1
			if rng.IntN(3) == 0 {
				left = 2 + rng.IntN(6) // an aggregate
			}
			arrival = arrival.Add(time.Duration(rng.IntN(500)) * time.Millisecond)
		}
		ev, err := event.Decode(data)
		recs = append(recs, consumers.Record{
			Position:     consumers.Position{SequenceNumber: seqOf(seq), SubSequence: int64(sub)},
			ShardID:      shardID,
			PartitionKey: "pk",
			ArrivalTime:  arrival,
			Data:         data,
			Event:        ev,
			Err:          err,
			Aggregated:   left > 1 || sub > 0,
		})
		sub++
		left--
	}
	return recs
}

// readRows decodes every object under prefix/events/ of a memStore.
func readObjects(t testing.TB, m *memStore, prefix string) map[string][]Row {
	t.Helper()
	out := map[string][]Row{}
	for _, k := range m.keys(normPrefix(prefix) + "events/") {
		m.mu.Lock()
		b := m.objects[k]
		m.mu.Unlock()
		rows, err := parquet.Read[Row](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		out[k] = rows
	}
	return out
}

// checkExactlyOnce verifies that objects hold every good record exactly
// once, with the values RowOf gives, in the partition its event time and
// type say, in objects named after the first and last record they hold.
func checkExactlyOnce(t testing.TB, prefix string, objects map[string][]Row, recs []consumers.Record) {
	t.Helper()
	want := map[consumers.Position]*consumers.Record{}
	for i := range recs {
		if recs[i].Err == nil {
			want[recs[i].Position] = &recs[i]
		}
	}
	seen := map[consumers.Position]string{}
	for key, rows := range objects {
		info, err := ParseObjectKey(prefix, key)
		if err != nil {
			t.Errorf("object %s: %v", key, err)
			continue
		}
		if len(rows) == 0 {
			t.Errorf("object %s is empty", key)
			continue
		}
		var first, last consumers.Position
		for i, row := range rows {
			pos := consumers.Position{SequenceNumber: row.SequenceNumber, SubSequence: row.SubSequenceNumber}
			if i == 0 {
				first = pos
			} else if !pos.After(last) {
				t.Errorf("object %s: rows out of shard order at %s", key, pos)
			}
			last = pos
			if other, dup := seen[pos]; dup {
				t.Errorf("record %s archived twice: in %s and %s", pos, other, key)
				continue
			}
			seen[pos] = key
			rec, ok := want[pos]
			if !ok {
				t.Errorf("object %s holds %s, which is not a good record", key, pos)
				continue
			}
			p := PartitionOf(rec.Event.Type, rec.Event.TS)
			if info.Type != rec.Event.Type || info.Date != p.Date() || info.Hour != p.HourString() {
				t.Errorf("record %s (type %q, ts %s) is in partition %s", pos, rec.Event.Type, rec.Event.TS, info.PartitionPath())
			}
			if exp := RowOf(rec); !rowsEqual(row, exp) {
				t.Errorf("record %s:\n got %+v\nwant %+v", pos, row, exp)
			}
		}
		if first != info.First || last != info.Last {
			t.Errorf("object %s holds %s..%s", key, first, last)
		}
	}
	for pos := range want {
		if _, ok := seen[pos]; !ok {
			t.Errorf("good record %s is missing from the archive", pos)
		}
	}
}

// rowsEqual compares rows read back with written ones: Parquet has no
// difference between a nil and an empty map.
func rowsEqual(a, b Row) bool {
	norm := func(r Row) Row {
		if len(r.Features) == 0 {
			r.Features = nil
		}
		if len(r.Attrs) == 0 {
			r.Attrs = nil
		}
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// memState is an in-memory consumers.StateStore.
type memState struct {
	mu    sync.Mutex
	state []byte
	saves int
}

func (m *memState) Load(ctx context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.state), nil
}

func (m *memState) Save(ctx context.Context, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = bytes.Clone(b)
	m.saves++
	return nil
}

// testArchive returns an Archive over a memStore with cfg's defaults.
func testArchive(t testing.TB, cfg Config) (*Archive, *memStore) {
	t.Helper()
	if raceEnabled && cfg.Compression == "" {
		cfg.Compression = CompressionSnappy
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	a, err := newArchive(store, cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	return a, store
}

var errCrash = errors.New("crashed (simulated SIGKILL)")

// sortedKeys returns m's keys sorted.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	panic("not a counter or gauge")
}

// nopS3 satisfies S3API for tests that never reach S3.
type nopS3 struct{ S3API }
