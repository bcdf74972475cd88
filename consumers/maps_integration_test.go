package consumers_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// mapsProbe is a Processor whose shards check every event against a fresh
// decode of its record and note which batch first held each of its maps.
// With releases, its shards implement consumers.EventMapsReleaser.
type mapsProbe struct {
	releases bool

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
		if err != nil || !reflect.DeepEqual(r.Event, want) {
			p.errs = append(p.errs, fmt.Sprintf("handed %+v, decoding %s alone gives %+v (%v)", r.Event, r.Data, want, err))
		}
		p.events++
		for _, m := range []any{r.Event.Features, r.Event.Attrs} {
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
