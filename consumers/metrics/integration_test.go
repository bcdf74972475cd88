package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/producers"
)

// The crash test re-executes the test binary as a metrics consumer process.
const (
	crashChildEnv = "METRICS_CRASH_CHILD"
	crashStream   = "METRICS_CRASH_STREAM"
	crashLeases   = "METRICS_CRASH_LEASES"
	crashTable    = "METRICS_CRASH_TABLE"
	crashOwner    = "METRICS_CRASH_OWNER"
	crashSuicide  = "METRICS_CRASH_SUICIDE"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChildMain())
	}
	os.Exit(m.Run())
}

// runtimeConfig is the runtime tuned for tests: short leases, fast polls.
func runtimeConfig(c *awsx.Clients, stream, leaseTable string, proc consumers.Processor) consumers.Config {
	return consumers.Config{
		Stream: stream, Processor: proc, Kinesis: c.Kinesis,
		Leases: leases.NewDynamoStore(c.DynamoDB, leaseTable), DeadLetter: consumers.NewMemoryDeadLetter(),
		LeaseDuration: 1500 * time.Millisecond, RenewInterval: 300 * time.Millisecond, ShardSyncInterval: time.Second,
		PollInterval: 50 * time.Millisecond, IdleInterval: 150 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	}
}

// crashChildMain runs the metrics consumer until SIGTERM. With
// METRICS_CRASH_SUICIDE=p it SIGKILLs itself with probability p right after
// writing rows (progress not saved) or after saving progress (checkpoint
// not written): the windows a replay must get right.
func crashChildMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "metrics crash child:", err); return 2 }
	c, err := awsx.Load(ctx)
	if err != nil {
		return fail(err)
	}
	p, err := NewProcessor(NewDynamoStore(c.DynamoDB, os.Getenv(crashTable)), Config{})
	if err != nil {
		return fail(err)
	}
	suicide, _ := strconv.ParseFloat(os.Getenv(crashSuicide), 64)
	p.testHook = func(string) {
		if rand.Float64() < suicide {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	cfg := runtimeConfig(c, os.Getenv(crashStream), os.Getenv(crashLeases), p)
	cfg.Owner = os.Getenv(crashOwner)
	cfg.CheckpointInterval = -1
	r, err := consumers.NewRunner(cfg)
	if err != nil {
		return fail(err)
	}
	if err := r.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// sender produces events with the project's producer (KPL aggregation on)
// and remembers what Kinesis acknowledged.
type sender struct {
	p    *producers.Producer
	mu   sync.Mutex
	sent []event.Event
}

func newSender(t *testing.T, c *awsx.Clients, stream string) *sender {
	t.Helper()
	p, err := producers.New(c.Kinesis, stream, producers.WithLinger(20*time.Millisecond),
		producers.WithOnFailure(func(r producers.Record, err error) { t.Errorf("produce: %v", err) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return &sender{p: p}
}

func (s *sender) send(t *testing.T, evs ...event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range evs {
		if err := s.p.Put(ctx, producers.Record{PartitionKey: evs[i].PartitionKey(), Data: evs[i].AppendJSON(nil)}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	if err := s.p.Flush(ctx); err != nil {
		t.Fatalf("flush producer: %v", err)
	}
	s.mu.Lock()
	s.sent = append(s.sent, evs...)
	s.mu.Unlock()
}

func (s *sender) events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.sent...)
}

// apiClient queries the read API over HTTP, as users do.
type apiClient struct {
	t   *testing.T
	url string
}

func (a apiClient) query(metric string, from, to time.Time) (*Result, error) {
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	resp, err := http.Get(a.url + "/v1/metrics/" + metric + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", metric, resp.Status)
	}
	var res Result
	return &res, json.NewDecoder(resp.Body).Decode(&res)
}

// converge polls the API until it matches the oracle of evs, or fails.
func (a apiClient) converge(within time.Duration, evs []event.Event, from, to time.Time) {
	a.t.Helper()
	want := oracle(evs)
	deadline := time.Now().Add(within)
	var diffs []string
	for time.Now().Before(deadline) {
		acc, err1 := a.query("access", from, to)
		eng, err2 := a.query("engagement", from, to)
		if err1 == nil && err2 == nil {
			if diffs = oracleDiff(want, acc, eng); len(diffs) == 0 {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(diffs) > 8 {
		diffs = append(diffs[:8], fmt.Sprintf("... and %d more", len(diffs)-8))
	}
	a.t.Fatalf("API did not converge to the events within %s:\n%s", within, strings.Join(diffs, "\n"))
}

func runRunner(t *testing.T, cfg consumers.Config) (stop func()) {
	t.Helper()
	r, err := consumers.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}
}

// crafted is a minute-by-minute event set with known answers: three routes
// with set cache mixes and latencies, two placements, seconds out of order.
func crafted(base time.Time, minutes int) []event.Event {
	rng := rand.New(rand.NewPCG(11, 12))
	var evs []event.Event
	for m := 0; m < minutes; m++ {
		w := base.Add(time.Duration(m) * time.Minute)
		at := func(i int) time.Time { return w.Add(time.Duration(i*997%59000) * time.Millisecond) }
		// /api/items/:id: 6 HIT, 2 MISS, 1 EXPIRED, 1 STALE, 2 without cache.
		for i, c := range []string{"HIT", "HIT", "MISS", "HIT", "EXPIRED", "HIT", "-", "STALE", "HIT", "MISS", "HIT", ""} {
			evs = append(evs, access(at(i), "/api/items/:id", c, []int{200, 200, 304, 500}[i%4], float64(5+i*3+m)))
		}
		for i := 0; i < 5+m; i++ {
			evs = append(evs, access(at(i+20), "/api/feed", "MISS", 200, 40+float64(i)))
		}
		evs = append(evs, access(at(30), "/api/users/:id", "BYPASS", 404, 2))
		for i := 0; i < 10; i++ {
			u := fmt.Sprintf("u-%d", (m*7+i)%15)
			evs = append(evs, impression(at(40+i), u, "home_feed"))
			if i%4 == 0 {
				evs = append(evs, click(at(41+i), u, "home_feed"))
			}
			evs = append(evs, impression(at(50+i), u, "search"))
		}
	}
	rng.Shuffle(len(evs), func(i, j int) { // out of order, also across minutes
		if evs[i].TS.Sub(evs[j].TS).Abs() < 20*time.Second {
			evs[i], evs[j] = evs[j], evs[i]
		}
	})
	return evs
}

func TestIntegration_CraftedEventsGiveExactAnswersThroughTheAPI(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 2)
	table := testenv.Table(t, c, setup.MetricsTable)
	store := NewDynamoStore(c.DynamoDB, table)
	srv := httptest.NewServer(NewHandler(NewReader(store, ReaderConfig{}), APIConfig{}))
	defer srv.Close()
	api := apiClient{t: t, url: srv.URL}
	s := newSender(t, c, stream)

	base := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	main, late := crafted(base, 6), crafted(base.Add(-5*time.Minute), 1)
	for i := 0; i < 3; i++ { // into the already published 10:01 window
		late = append(late, access(base.Add(time.Minute+30*time.Second), "/api/items/:id", "EXPIRED", 200, 7))
	}
	s.send(t, main...)

	reg := prometheus.NewRegistry()
	p, err := NewProcessor(store, Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRunner(t, runtimeConfig(c, stream, testenv.Table(t, c, setup.LeasesTable), p))
	from, to := base.Add(-10*time.Minute), base.Add(15*time.Minute)
	api.converge(60*time.Second, s.events(), from, to)

	// Five-minute-late events (behind the newest events by more than five
	// minutes) correct published windows; events beyond the allowed
	// lateness are dropped and counted.
	tooLate := []event.Event{access(time.Now().Add(-3*time.Hour), "/api/items/:id", "HIT", 200, 1)}
	s.send(t, late...)
	s.send(t, tooLate...)
	s.mu.Lock()
	s.sent = s.sent[:len(s.sent)-1] // the dropped one is not in the answers
	s.mu.Unlock()
	api.converge(60*time.Second, s.events(), from, to)
	waitFor(t, 30*time.Second, "the too-late event to be counted", func() bool {
		var cat Catalog
		resp, err := http.Get(srv.URL + "/v1/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&cat)
		return len(cat.Metrics) > 0 && cat.Metrics[0].LateDropped == 1
	})
	// Spot-check one window by hand: /api/items/:id has 12 requests, 10
	// with a cache status, 5 hits (of the HIT, MISS, EXPIRED, OTHER ones).
	res, err := api.query("access", base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		if r.Dims["route"] == "/api/items/:id" {
			v := r.Values
			if v["requests"] != 12 || v["cache_hit"] != 6 || v["cache_other"] != 1 || v["hit_rate"] != 0.6 || v["status_5xx"] != 3 {
				t.Errorf("10:00 /api/items/:id = %v", v)
			}
		}
	}

	// Time from a window's end (+ allowance) to its result being readable:
	// the window's events are far behind the idle watermark, so the
	// watermark has passed their window as soon as they are read.
	var lat []time.Duration
	for i := 0; i < 3; i++ {
		w := base.Add(time.Duration(8+i) * time.Minute)
		evs := []event.Event{access(w.Add(time.Second), "/api/latency", "HIT", 200, 1)}
		s.send(t, evs...)
		sent := time.Now()
		waitFor(t, 30*time.Second, "the window to be readable", func() bool {
			res, err := api.query("access", w, w.Add(time.Minute))
			if err != nil {
				return false
			}
			for _, r := range res.Rows {
				if r.Dims["route"] == "/api/latency" {
					return true
				}
			}
			return false
		})
		lat = append(lat, time.Since(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("put acknowledged → published window readable: %v (runtime poll 50ms/idle 150ms, FlushInterval 1s)", lat)
	stop()

	// A full replay (checkpoints lost: a new lease table) changes nothing.
	reg2 := prometheus.NewRegistry()
	p2, err := NewProcessor(store, Config{Registerer: reg2})
	if err != nil {
		t.Fatal(err)
	}
	rc := runtimeConfig(c, stream, testenv.Table(t, c, setup.LeasesTable), p2)
	rc.Registerer = reg2
	stop = runRunner(t, rc)
	total := len(s.events()) + len(tooLate)
	waitFor(t, 60*time.Second, "the replay to read every record", func() bool {
		return counterSum(reg2, "clickstream_consumer_records_total") >= float64(total)
	})
	stop()
	api.converge(5*time.Second, s.events(), from, to)
	if w := counterSum(reg2, "clickstream_metrics_events_total"); w != 0 {
		t.Errorf("replay aggregated %v events again; want 0 (all already in the rows)", w)
	}
}

func TestIntegration_SIGKILLedConsumerConvergesToExactCounts(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 2)
	leaseTable := testenv.Table(t, c, setup.LeasesTable)
	table := testenv.Table(t, c, setup.MetricsTable)
	srv := httptest.NewServer(NewHandler(NewReader(NewDynamoStore(c.DynamoDB, table), ReaderConfig{}), APIConfig{}))
	defer srv.Close()
	api := apiClient{t: t, url: srv.URL}
	s := newSender(t, c, stream)

	// Live traffic: event times around now, a few seconds out of order,
	// some five minutes late.
	rng := rand.New(rand.NewPCG(5, 6))
	produce := func() {
		evs := genEvents(rng, 40, time.Now())
		for i := range evs {
			evs[i].TS = time.Now().Add(-time.Duration(rng.IntN(3000)) * time.Millisecond).Truncate(time.Millisecond).UTC()
			if rng.IntN(50) == 0 {
				evs[i].TS = evs[i].TS.Add(-5 * time.Minute)
			}
		}
		s.send(t, evs...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var prodWG sync.WaitGroup
	prodWG.Add(1)
	go func() {
		defer prodWG.Done()
		for ctx.Err() == nil {
			produce()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	defer func() { cancel(); prodWG.Wait() }()

	child := func(owner string, suicide float64) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashStream+"="+stream, crashLeases+"="+leaseTable,
			crashTable+"="+table, crashOwner+"="+owner, crashSuicide+"="+strconv.FormatFloat(suicide, 'f', -1, 64))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills, suicides := 0, 0
	for i := range 6 {
		owner := "metrics-child"
		if i%2 == 1 {
			owner = fmt.Sprintf("metrics-child-%d", i) // a new process: waits for lease expiry
		}
		cmd := child(owner, 0.2)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-time.After(time.Duration(700+rand.IntN(1800)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
		case err := <-exited:
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child exited by itself: %v", err)
			}
			suicides++
		}
	}
	cancel()
	prodWG.Wait()
	evs := s.events()

	final := child("metrics-final", 0)
	from := time.Now().Add(-15 * time.Minute)
	to := time.Now().Add(2 * time.Minute)
	api.converge(90*time.Second, evs, from, to)
	_ = final.Process.Signal(syscall.SIGTERM)
	if err := final.Wait(); err != nil {
		t.Fatalf("graceful stop of the last process: %v", err)
	}
	t.Logf("%d events, %d SIGKILLs by the test, %d self-kills between rows/progress and checkpoint", len(evs), kills, suicides)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func counterSum(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
