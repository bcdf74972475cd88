package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/goleak"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/kpl"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChildMain())
	}
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's shared HTTP transport.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// kpl.VerifyChecksums's MD5 server, kept for the process.
		goleak.IgnoreTopFunction("github.com/minio/md5-simd.(*md5Server).process"),
	)
}

// env is one integration test's private stream and lease table.
type env struct {
	c      *awsx.Clients
	stream string
	table  string
	store  *monitoredStore
}

func newEnv(t *testing.T, shards int) *env {
	t.Helper()
	c := testenv.Clients(t)
	e := &env{c: c, stream: testenv.Stream(t, c, shards), table: testenv.Table(t, c, setup.LeasesTable)}
	e.store = &monitoredStore{Store: leases.NewDynamoStore(c.DynamoDB, e.table), last: map[string]consumers.Position{}}
	return e
}

// config returns a runner config with test-speed timings.
func (e *env) config(t *testing.T, p consumers.Processor, owner string) consumers.Config {
	return consumers.Config{
		Stream: e.stream, Processor: p, Kinesis: e.c.Kinesis, Leases: e.store,
		DeadLetter: consumers.NewMemoryDeadLetter(), Owner: owner,
		LeaseDuration: 1500 * time.Millisecond, RenewInterval: 300 * time.Millisecond,
		ShardSyncInterval: time.Second, PollInterval: 50 * time.Millisecond, IdleInterval: 150 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, CheckpointInterval: -1, ShutdownTimeout: 10 * time.Second,
		Logger: testLogger(t, owner),
	}
}

func testLogger(t *testing.T, owner string) *slog.Logger {
	if os.Getenv("CONSUMERS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// running is a Runner started in the background.
type running struct {
	r      *consumers.Runner
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func start(t *testing.T, cfg consumers.Config) *running {
	t.Helper()
	r, err := consumers.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	t.Cleanup(func() { rr.stop(t) })
	return rr
}

// stop shuts the runner down gracefully and waits.
func (rr *running) stop(t *testing.T) {
	t.Helper()
	rr.once.Do(func() {
		rr.cancel()
		select {
		case err := <-rr.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("runner did not stop in 20s")
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// monitoredStore checks, across every runner sharing it, that no
// checkpoint ever moves backwards.
type monitoredStore struct {
	leases.Store
	mu     sync.Mutex
	last   map[string]consumers.Position
	writes int
	errs   []string
}

func (m *monitoredStore) Update(ctx context.Context, l leases.Lease, u leases.Update) error {
	err := m.Store.Update(ctx, l, u)
	if err == nil && u.Checkpoint != nil {
		m.mu.Lock()
		k := l.App + "/" + l.ShardID
		if prev := m.last[k]; prev.After(*u.Checkpoint) {
			m.errs = append(m.errs, fmt.Sprintf("%s: checkpoint moved back from %v to %v by %s", k, prev, *u.Checkpoint, l.Owner))
		}
		m.last[k] = *u.Checkpoint
		m.writes++
		m.mu.Unlock()
	}
	return err
}

func (m *monitoredStore) check(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.errs {
		t.Error(e)
	}
}

// seen is one user record as a test processor saw it.
type seen struct {
	ID       string
	Key      string
	Counter  int
	Shard    string
	Position consumers.Position
	Owner    string
}

// recorder is a Processor that records every good record it is handed,
// durably on return; bad ones are kept apart.
type recorder struct {
	name  string
	owner string

	mu       sync.Mutex
	seen     []seen
	ids      map[string]int
	bad      []consumers.Record
	opened   map[string][]time.Time // shard → OpenShard times
	ended    map[string]time.Time   // shard → Flush after ShardEnd
	checkpts map[string][]consumers.Position
}

func newRecorder(name, owner string) *recorder {
	return &recorder{name: name, owner: owner, ids: map[string]int{}, opened: map[string][]time.Time{},
		ended: map[string]time.Time{}, checkpts: map[string][]consumers.Position{}}
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened[s.ID] = append(r.opened[s.ID], time.Now())
	r.checkpts[s.ID] = append(r.checkpts[s.ID], s.Checkpoint)
	return &recorderShard{r: r, shard: s.ID, last: s.Checkpoint}, nil
}

type recorderShard struct {
	r        *recorder
	shard    string
	last     consumers.Position
	shardEnd bool
}

// payload is what test producers put in every event's attrs.
type payload struct {
	ID    string `json:"id"`
	User  string `json:"user_id"`
	Attrs struct {
		Counter int `json:"counter,string"`
	} `json:"attrs"`
}

func parsePayload(data []byte) (payload, error) {
	var p payload
	err := json.Unmarshal(data, &p)
	return p, err
}

func (s *recorderShard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, rec := range b.Records {
		if !rec.Position.After(s.last) {
			return consumers.Position{}, fmt.Errorf("record %v handed at or before %v: order broken", rec.Position, s.last)
		}
		s.last = rec.Position
		if rec.Err != nil {
			s.r.bad = append(s.r.bad, rec)
			continue
		}
		p, err := parsePayload(rec.Data)
		if err != nil {
			return consumers.Position{}, err
		}
		s.r.seen = append(s.r.seen, seen{ID: p.ID, Key: p.User, Counter: p.Attrs.Counter, Shard: s.shard, Position: rec.Position, Owner: s.r.owner})
		s.r.ids[p.ID]++
	}
	s.shardEnd = s.shardEnd || b.ShardEnd
	return b.Last(), nil
}

func (s *recorderShard) Flush(ctx context.Context) (consumers.Position, error) {
	if s.shardEnd {
		s.r.mu.Lock()
		s.r.ended[s.shard] = time.Now()
		s.r.mu.Unlock()
	}
	return s.last, nil
}

func (s *recorderShard) Close() {}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[id]
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// producer puts test events: partition key = user, a per-user counter in attrs.
type producer struct {
	kc     *kinesis.Client
	stream string
	mu     sync.Mutex
	ids    []string
	next   map[string]int
}

func newProducer(c *awsx.Clients, stream string) *producer {
	return &producer{kc: c.Kinesis, stream: stream, next: map[string]int{}}
}

func eventJSON(id, user string, counter int) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":%q,"type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":%q,"item_id":"a-1","placement":"home_feed","attrs":{"counter":"%d"}}`,
		id, user, counter)
}

// put sends one record per user (so PutRecords keeps per-user order across
// calls), retrying failed entries.
func (p *producer) put(ctx context.Context, users []string) error {
	p.mu.Lock()
	var entries []types.PutRecordsRequestEntry
	var ids []string
	for _, u := range users {
		n := p.next[u]
		p.next[u] = n + 1
		id := fmt.Sprintf("%s-%d", u, n)
		ids = append(ids, id)
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(u), Data: eventJSON(id, u, n)})
	}
	p.mu.Unlock()
	for attempt := 0; len(entries) > 0; attempt++ {
		if attempt > 20 {
			return errors.New("put records: too many retries")
		}
		out, err := p.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: entries})
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var retry []types.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				retry = append(retry, entries[i])
			}
		}
		// A failed entry is retried on its own; its user's later records are
		// only put after it (the next put call), so order per user holds.
		entries = retry
	}
	p.mu.Lock()
	p.ids = append(p.ids, ids...)
	p.mu.Unlock()
	return nil
}

func (p *producer) produced() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}

// users returns n user ids.
func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%02d", i)
	}
	return out
}

// background runs fn every interval until the returned stop is called.
func background(interval time.Duration, fn func(ctx context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
}

func kplRecord(pk string, data []byte) kpl.Record { return kpl.Record{PartitionKey: pk, Data: data} }
