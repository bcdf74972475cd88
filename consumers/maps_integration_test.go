package consumers_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// mapsProbe is a Processor whose shards check every event against a fresh
// decode of its record and note which batch first held each of its maps.
// With releases, its shards implement consumers.EventMapsReleaser.
type mapsProbe struct {
	releases bool
	lists    bool // its shards implement consumers.EventListsReader

	mu      sync.Mutex
	batch   int
	events  int
	firstIn map[uintptr]int // map → the batch that first held it
	reused  int             // maps held again in a later batch
	keep    []any           // every map seen, so no new map gets a freed one's address
	errs    []string
}

func (p *mapsProbe) Name() string { return "maps-probe" }

func (p *mapsProbe) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	sh := &probeShard{p: p, last: s.Checkpoint}
	if p.lists {
		return listsProbeShard{sh}, nil
	}
	if p.releases {
		return releasingProbeShard{sh}, nil
	}
	return sh, nil
}

func (p *mapsProbe) counts() (events, reused int, errs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.events, p.reused, append([]string(nil), p.errs...)
}

type probeShard struct {
	p    *mapsProbe
	last consumers.Position
}

func (s *probeShard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batch++
	for _, r := range b.Records {
		if r.Err != nil {
			p.errs = append(p.errs, fmt.Sprintf("%s: %v", r.Data, r.Err))
			continue
		}
		want, err := event.Decode(r.Data)
		if p.lists {
			want = asLists(want)
		}
		if err != nil || !reflect.DeepEqual(r.Event, want) {
			p.errs = append(p.errs, fmt.Sprintf("handed %+v, decoding %s alone gives %+v (%v)", r.Event, r.Data, want, err))
		}
		p.events++
		for _, m := range []any{r.Event.Features, r.Event.Attrs, r.Event.FeatureList, r.Event.AttrList} {
			v := reflect.ValueOf(m)
			if v.IsNil() {
				continue
			}
			if first, ok := p.firstIn[v.Pointer()]; ok && first < p.batch {
				p.reused++
			} else if !ok {
				p.firstIn[v.Pointer()] = p.batch
			}
			p.keep = append(p.keep, m)
		}
	}
	s.last = b.Last()
	return s.last, nil
}

func (s *probeShard) Flush(ctx context.Context) (consumers.Position, error) { return s.last, nil }
func (s *probeShard) Close()                                                {}

type releasingProbeShard struct{ *probeShard }

func (releasingProbeShard) ReleasesEventMaps() {}

type listsProbeShard struct{ *probeShard }

func (listsProbeShard) ReadsEventLists() {}

// asLists is e with its maps as lists in name order, as
// event.DecodeLists decodes them.
func asLists(e event.Event) event.Event {
	for _, name := range slices.Sorted(maps.Keys(e.Features)) {
		e.FeatureList = append(e.FeatureList, event.Feature{Name: name, Value: e.Features[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(e.Attrs)) {
		e.AttrList = append(e.AttrList, event.Attr{Name: name, Value: e.Attrs[name]})
	}
	e.Features, e.Attrs = nil, nil
	return e
}

// A processor that reads events' features and attrs as lists
// (consumers.EventListsReader) is handed them so, in name order, with the
// maps nil, and later batches reuse the lists' memory.
func TestRunner_HandsListsToProcessorsThatReadThem(t *testing.T) {
	e := newEnv(t, 1)
	p := &mapsProbe{lists: true, firstIn: map[uintptr]int{}}
	start(t, e.config(t, p, "owner-1"))
	for round := range 4 {
		var entries []types.PutRecordsRequestEntry
		for i := range 10 {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("u1"), Data: fmt.Appendf(nil,
				`{"v":1,"id":"l%d-%d","type":"impression","ts":"2026-11-22T10:00:00.123Z","user_id":"u1","features":{"tag:b":%d,"cat:a":1,"tag:b":0.5},"attrs":{"z":"1","ab":"B"}}`,
				round, i, i)})
		}
		if out, err := e.c.Kinesis.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(e.stream), Records: entries}); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("put records: %v", err)
		}
		waitFor(t, 30*time.Second, "the round's events", func() bool {
			n, _, _ := p.counts()
			return n >= 10*(round+1)
		})
	}
	n, reused, errs := p.counts()
	for _, err := range errs {
		t.Error(err)
	}
	if n != 40 || reused == 0 {
		t.Errorf("%d events handed (want 40), %d lists in memory of earlier batches (want some)", n, reused)
	}
}

// The runtime decodes later events into the maps of earlier batches only
// for a processor that releases them (consumers.EventMapsReleaser), and
// every event is still exactly its record's.
func TestRunner_RecyclesEventMapsOnlyForProcessorsThatReleaseThem(t *testing.T) {
	for _, releases := range []bool{true, false} {
		t.Run(fmt.Sprintf("releases=%v", releases), func(t *testing.T) {
			e := newEnv(t, 1)
			p := &mapsProbe{releases: releases, firstIn: map[uintptr]int{}}
			start(t, e.config(t, p, "owner-1"))
			for round := range 4 {
				putEvents(t, e, ids(fmt.Sprintf("r%d", round), 0, 10))
				waitFor(t, 30*time.Second, "the round's events", func() bool {
					n, _, _ := p.counts()
					return n >= 10*(round+1)
				})
			}
			n, reused, errs := p.counts()
			for _, err := range errs {
				t.Error(err)
			}
			switch {
			case n != 40:
				t.Errorf("%d events handed, want 40", n)
			case releases && reused == 0:
				t.Error("no map of an earlier batch was reused")
			case !releases && reused != 0:
				t.Errorf("%d maps of earlier batches handed again to a processor that keeps them", reused)
			}
			t.Logf("%d events, %d maps reused from earlier batches", n, reused)
		})
	}
}
