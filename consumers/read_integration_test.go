package consumers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/kinesiswire"
)

// putMixed puts 3 plain records (e-00..e-02), an aggregate of 4 (k-00..k-03)
// and a bad record.
func putMixed(t *testing.T, e *env) {
	t.Helper()
	putEvents(t, e, ids("e", 0, 3))
	putAggregateOf(t, e, ids("k", 0, 4))
	if _, err := e.c.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream),
		PartitionKey: aws.String("u1"), Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
}

// ReadShard reads a shard as the runtime does: plain records, aggregates
// de-aggregated, bad records with their reason, in shard order.
func TestReadShard_ReadsEveryUserRecordDecodedInOrder(t *testing.T) {
	e := newEnv(t, 1)
	putMixed(t, e)
	shards, err := consumers.ListShards(context.Background(), e.c.Kinesis, e.stream)
	if err != nil || len(shards) != 1 || shards[0].Closed {
		t.Fatalf("ListShards = %+v, %v", shards, err)
	}
	recs, n, err := consumers.ReadShard(context.Background(), e.c.Kinesis, e.stream, shards[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 || len(recs) != 8 {
		t.Fatalf("%d Kinesis records, %d user records; want 5 and 8", n, len(recs))
	}
	want := []string{"e-00", "e-01", "e-02", "k-00", "k-01", "k-02", "k-03"}
	for i, id := range want {
		if recs[i].Err != nil || recs[i].Event.ID != id || recs[i].Aggregated != (i >= 3) {
			t.Fatalf("record %d: id %q err %v aggregated %v; want %s", i, recs[i].Event.ID, recs[i].Err, recs[i].Aggregated, id)
		}
	}
	if recs[7].Err == nil {
		t.Fatal("the bad record decoded")
	}
	for i := 1; i < len(recs); i++ {
		if !recs[i].Position.After(recs[i-1].Position) {
			t.Fatalf("record %d is not after record %d", i, i-1)
		}
	}
}

// The runtime reads the same with GetRecords answers decoded by
// internal/kinesiswire (consume --get-records-protocol json, the default,
// and cbor): plain records, an aggregate and a bad record, each handed
// once, in order.
func TestRunner_ReadsWithEveryWireFormat(t *testing.T) {
	for name, f := range map[string]kinesiswire.Format{"json": kinesiswire.JSON, "cbor": kinesiswire.CBOR} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1)
			putMixed(t, e)
			rec := newRecorder("wire", "o1")
			cfg := e.config(t, rec, "o1")
			cfg.Kinesis = kinesiswire.Wrap(e.c.Kinesis, f)
			rr := start(t, cfg)
			want := append(ids("e", 0, 3), ids("k", 0, 4)...)
			waitFor(t, 30*time.Second, "every record handed", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.seen) >= len(want) && len(rec.bad) >= 1
			})
			rr.stop(t)
			seen := rec.all()
			if len(seen) != len(want) {
				t.Fatalf("%d records handed, want %d", len(seen), len(want))
			}
			for i, id := range want {
				if seen[i].ID != id || rec.count(id) != 1 {
					t.Errorf("record %d: %s handed %d times; want %s once", i, seen[i].ID, rec.count(id), id)
				}
			}
		})
	}
}

// dataKeeper keeps every batch's records' Data as handed (not copied) with
// a copy beside it; as a RecordDataReleaser it only notes where each
// batch's data lies.
type dataKeeper struct {
	mu      sync.Mutex
	kept    [][]byte  // as handed
	copies  []string  // what they held when handed
	batches []uintptr // where each batch's first record's data is
	ids     []string
}

func (k *dataKeeper) Name() string { return "keeper" }
func (k *dataKeeper) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	return &keeperShard{k: k}, nil
}

type keeperShard struct {
	k    *dataKeeper
	last consumers.Position
}

func (s *keeperShard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	for _, r := range b.Records {
		s.k.kept = append(s.k.kept, r.Data)
		s.k.copies = append(s.k.copies, string(r.Data))
		s.k.ids = append(s.k.ids, strings.Clone(r.Event.ID))
		s.last = r.Position
	}
	if len(b.Records) > 0 {
		s.k.batches = append(s.k.batches, uintptr(unsafe.Pointer(unsafe.SliceData(b.Records[0].Data))))
	}
	return s.last, nil
}
func (s *keeperShard) Flush(ctx context.Context) (consumers.Position, error) { return s.last, nil }
func (s *keeperShard) Close()                                                {}

// releasingKeeper is a dataKeeper that declares it keeps no data.
type releasingKeeper struct{ *dataKeeper }

func (k releasingKeeper) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	return releasingShard{&keeperShard{k: k.dataKeeper}}, nil
}

type releasingShard struct{ *keeperShard }

func (releasingShard) ReleasesRecordData() {}

var _ consumers.RecordDataReleaser = releasingShard{}

// A processor that keeps nothing of its batches' data
// (RecordDataReleaser) is handed answer after answer decoded into the same
// memory, each answer whole and right; one that does not gets memory of
// its own for every answer, and what it kept stays as it was handed. The
// releasing keeper here breaks its promise (it keeps Data) only to see
// where the data was.
func TestRunner_ReadsIntoTheSameMemoryOnlyForProcessorsThatKeepNoData(t *testing.T) {
	for name, f := range map[string]kinesiswire.Format{"json": kinesiswire.JSON, "cbor": kinesiswire.CBOR} {
		for _, releases := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s releases %v", name, releases), func(t *testing.T) {
				e := newEnv(t, 1)
				want := ids("e", 0, 60)
				putEvents(t, e, want)
				k := &dataKeeper{}
				var p consumers.Processor = k
				if releases {
					p = releasingKeeper{k}
				}
				cfg := e.config(t, p, "o1")
				cfg.Kinesis = kinesiswire.Wrap(e.c.Kinesis, f)
				cfg.MaxRecords = 10 // six answers in a row, none empty
				rr := start(t, cfg)
				waitFor(t, 30*time.Second, "every record handed", func() bool {
					k.mu.Lock()
					defer k.mu.Unlock()
					return len(k.ids) >= len(want)
				})
				rr.stop(t)
				k.mu.Lock()
				defer k.mu.Unlock()
				if !slices.Equal(k.ids, want) {
					t.Fatalf("handed %v, want %v", k.ids, want)
				}
				reused := 0
				for i := 1; i < len(k.batches); i++ {
					if slices.Contains(k.batches[:i], k.batches[i]) {
						reused++
					}
				}
				changed := 0
				for i := range k.kept {
					if string(k.kept[i]) != k.copies[i] {
						changed++
					}
				}
				switch {
				case releases && f == kinesiswire.JSON && reused == 0:
					// (kinesis-local sends CBOR data as base64 text: decoded
					// record by record, not into the memory kept.)
					t.Errorf("%d answers, each decoded into new memory", len(k.batches))
				case !releases && (reused > 0 || changed > 0):
					t.Errorf("%d answers decoded into an earlier one's memory; %d records kept changed since", reused, changed)
				}
				t.Logf("%d batches, %d decoded into an earlier answer's memory", len(k.batches), reused)
			})
		}
	}
}
