package chaos

import (
	"context"
	"errors"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/internal/retry"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lab/proc"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
)

// Config configures a chaos run. Zero fields take the defaults in brackets.
type Config struct {
	// Binary is the clickstream executable started for each component. Required.
	Binary string
	// Clients talk to the stack (resources, ground truth, outputs). Required.
	Clients *awsx.Clients
	// Env is the environment of the components [os.Environ()].
	Env []string
	// Shards of the fresh stream before the split and merge [4].
	Shards int
	// Bucket receives the archive under a fresh chaos/ prefix [clickstream-archive].
	Bucket string
	// Rate is the load in events/s [250].
	Rate float64
	// Duration of the load (and fault) phase [5m].
	Duration time.Duration
	// Drain bounds the wait for the consumers to catch up afterwards [4m].
	Drain time.Duration
	// FaultEvery is the mean time between consumer faults [Duration/12, at least 5s].
	FaultEvery time.Duration
	// NoReshard skips the split and the merge.
	NoReshard bool
	// NoProxy runs the components straight against the emulator instead of
	// through the in-process shard-limit/fault proxy (localstack/kinesisproxy:
	// AWS's per-shard limits, a window of throttling, 500s and dropped
	// connections, and a restart of the proxy).
	NoProxy bool
	// ReadMode is each consumer's --read-mode ["poll,vectors=efo": vectors
	// reads through enhanced fan-out, served by the proxy; "poll" with
	// NoProxy, since kinesis-local's own fan-out is not usable].
	ReadMode string
	// Seed makes the fault schedule and the load reproducible [time-based].
	Seed uint64
	// Users of the load generator [1000]: few enough that users get many events.
	Users int
	// LeaseDuration of the consumers: the fail-over time after a kill [6s].
	LeaseDuration time.Duration
	// ArchiveMaxAge of the archive consumer [10s].
	ArchiveMaxAge time.Duration
	// LogDir receives the components' logs [a temporary directory].
	LogDir string
	// Keep leaves the stream, tables and archive objects in place.
	Keep bool
	// Progress receives a line per fault and phase [discard].
	Progress io.Writer
}

func (c *Config) defaults() error {
	if c.Binary == "" || c.Clients == nil {
		return errors.New("chaos: Binary and Clients are required")
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.Shards <= 0 {
		c.Shards = 4
	}
	if c.Bucket == "" {
		c.Bucket = setup.DefaultBucket
	}
	if c.Rate <= 0 {
		c.Rate = 250
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Minute
	}
	if c.Drain <= 0 {
		c.Drain = 4 * time.Minute
	}
	if c.FaultEvery <= 0 {
		c.FaultEvery = max(5*time.Second, c.Duration/12)
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Users <= 0 {
		c.Users = 1000
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 6 * time.Second
	}
	if c.ArchiveMaxAge <= 0 {
		c.ArchiveMaxAge = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.ReadMode == "" && c.NoProxy:
		c.ReadMode = "poll"
	case c.ReadMode == "":
		c.ReadMode = "poll,vectors=efo"
	}
	return nil
}

// Apps are the consumer applications, in report order.
var Apps = apps.Names()

// Faults counts what was injected and what the components saw.
type Faults struct {
	Kills          map[string]int // SIGKILLs per app
	Starts         map[string]int // consumer processes started per app (first ones included)
	Concurrent     map[string]int // times a second process of the app ran beside the first
	Splits, Merges int
	// The proxy's: restarts, and what it injected or throttled.
	ProxyRestarts             int
	ProxyThrottled, Proxy500s int64
	ProxyDropped              int64
	ProxyDroppedAfter         int64 // of ProxyDropped: after the write was applied
	// ReshardErrors are failed split/merge attempts (not fatal).
	ReshardErrors []string
	// Seen by the consumers (from their /metrics, sampled every 2s, so a
	// killed process's last seconds are missing).
	Throttled  float64 // GetRecords/GetShardIterator calls throttled
	GetErrors  float64 // all failed GetRecords/GetShardIterator calls
	LeaseTakes float64
	LeasesLost float64
	// Enhanced fan-out: subscriptions opened, and failed or broken ones.
	Subscriptions, SubscribeErrors float64
}

// Report is the outcome of a run.
type Report struct {
	Started      time.Time
	Seed         uint64
	Stream       string
	LoadDuration time.Duration
	CaughtUp     map[string]time.Duration // after the load; -1 when not within Drain
	Shards       []ShardInfo
	Records      int // user records on the stream
	Valid        int
	Bad          int
	Duplicates   int // valid records that are copies of an event (retried PutRecords), skipped
	CopiesLeft   int // copies the window cannot see (too late, or on an unrelated shard): kept

	Faults  Faults
	Checks  []Check
	Errors  []string
	Elapsed time.Duration
}

// Passed reports whether every check passed and nothing went wrong.
func (r *Report) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0 && len(r.Errors) == 0
}

// run is one chaos run's mutable state.
type run struct {
	cfg    Config
	res    setup.Resources
	prefix string
	rng    *rand.Rand
	rep    *Report
	proxy  *faultProxy // nil with NoProxy

	mu    sync.Mutex
	procs map[string][]*proc.Process // running consumer processes per app
	seq   int                        // numbering of consumer processes
	// last scraped counter values per process, summed at the end.
	counters map[*proc.Process][6]float64
}

// Run creates a fresh stream, tables and archive prefix, runs load with
// faults for Duration, waits for the consumers to catch up, stops them
// gracefully and checks their outputs against the stream.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	id := time.Now().UTC().Format("20060102-150405") + fmt.Sprintf("-%04x", cfg.Seed&0xffff)
	r := &run{
		cfg: cfg,
		res: setup.Resources{Stream: "chaos-" + id, Shards: cfg.Shards, Bucket: cfg.Bucket,
			VectorsTable: "chaos-" + id + "-vectors", MetricsTable: "chaos-" + id + "-metrics", LeasesTable: "chaos-" + id + "-leases"},
		prefix:   "chaos/" + id,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		procs:    map[string][]*proc.Process{},
		counters: map[*proc.Process][6]float64{},
		rep: &Report{Started: start, Seed: cfg.Seed, CaughtUp: map[string]time.Duration{},
			Faults: Faults{Kills: map[string]int{}, Starts: map[string]int{}, Concurrent: map[string]int{}}},
	}
	r.rep.Stream = r.res.Stream
	r.logf("creating stream %s (%d shards), tables, archive prefix s3://%s/%s (seed %d)", r.res.Stream, r.res.Shards, r.res.Bucket, r.prefix, cfg.Seed)
	if err := setup.Ensure(ctx, cfg.Clients, r.res, nil); err != nil {
		return nil, err
	}
	if !cfg.Keep {
		defer r.cleanup()
	}
	if r.cfg.LogDir == "" {
		d, err := os.MkdirTemp("", "clickstream-chaos-")
		if err != nil {
			return nil, err
		}
		r.cfg.LogDir = d
	} else if err := os.MkdirAll(r.cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	defer r.stopAll(5 * time.Second)
	if !cfg.NoProxy {
		up := envValue(r.cfg.Env, "AWS_ENDPOINT_URL_KINESIS")
		if up == "" {
			return nil, errors.New("chaos: the fault proxy needs AWS_ENDPOINT_URL_KINESIS (or use NoProxy)")
		}
		fp, err := startProxy(up)
		if err != nil {
			return nil, err
		}
		defer fp.close()
		r.proxy = fp
		r.cfg.Env = withEnv(r.cfg.Env, "AWS_ENDPOINT_URL_KINESIS", fp.URL())
		r.logf("components reach Kinesis through the fault proxy at %s (AWS per-shard limits)", fp.URL())
	}

	for _, app := range Apps {
		if _, err := r.startConsumer(ctx, app); err != nil {
			return nil, err
		}
	}
	r.logf("consumers up, read modes %s (logs in %s); load %.0f events/s for %s with faults every ~%s", cfg.ReadMode, r.cfg.LogDir, cfg.Rate, cfg.Duration, cfg.FaultEvery)

	if err := r.loadWithFaults(ctx); err != nil {
		return nil, err
	}

	r.logf("load done; reading the stream (every shard from TRIM_HORIZON)")
	truth, err := ReadTruth(ctx, cfg.Clients.Kinesis, r.res.Stream)
	if err != nil {
		return nil, err
	}
	r.rep.Shards, r.rep.Records, r.rep.Valid = truth.Shards, len(truth.Records), truth.Valid()
	r.rep.Bad = r.rep.Records - r.rep.Valid
	r.rep.Duplicates, r.rep.CopiesLeft = truth.Duplicates(), truth.CopiesLeft()
	r.logf("stream: %d shards, %d user records (%d valid, %d bad); waiting for the consumers (up to %s)", len(truth.Shards), r.rep.Records, r.rep.Valid, r.rep.Bad, cfg.Drain)
	loadEnd := time.Now()
	if err := r.waitCaughtUp(ctx, truth, loadEnd); err != nil {
		return nil, err
	}
	r.scrapeAll(ctx)
	r.logf("stopping the consumers gracefully")
	for _, err := range r.stopAll(90 * time.Second) {
		r.rep.Errors = append(r.rep.Errors, err.Error())
	}
	r.sumCounters()
	if r.proxy != nil {
		st := r.proxy.Stats()
		f := &r.rep.Faults
		f.ProxyThrottled = st.PutEntriesThrottled + st.GetRecordsThrottled + st.InjectedErrors
		f.Proxy500s, f.ProxyDropped, f.ProxyDroppedAfter = st.Injected500s, st.DroppedBefore+st.DroppedAfter, st.DroppedAfter
	}

	r.logf("reading the outputs")
	checks, err := r.verify(ctx, truth)
	if err != nil {
		return nil, err
	}
	r.rep.Checks = checks
	r.rep.Elapsed = time.Since(start)
	return r.rep, nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "chaos %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (r *run) resFlags() []string {
	return []string{"--stream", r.res.Stream, "--bucket", r.res.Bucket, "--vectors-table", r.res.VectorsTable,
		"--metrics-table", r.res.MetricsTable, "--leases-table", r.res.LeasesTable}
}

// startConsumer starts one more `consume APP` process and waits until it is healthy.
func (r *run) startConsumer(ctx context.Context, app string) (*proc.Process, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.seq++
	name := fmt.Sprintf("consume-%s-%d", app, r.seq)
	r.mu.Unlock()
	args := []string{"consume", app, "--metrics-addr", addr, "--owner", name, "--prefix", r.prefix,
		"--archive-max-age", r.cfg.ArchiveMaxAge.String(), "--lease-duration", r.cfg.LeaseDuration.String(),
		"--read-mode", readModeOf(r.cfg.ReadMode, app)}
	p, err := proc.Start(r.cfg.Binary, r.cfg.LogDir, name, addr, r.cfg.Env, append(args, r.resFlags()...)...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitHealthy(ctx, time.Minute); err != nil {
		p.Kill()
		return nil, err
	}
	r.mu.Lock()
	r.procs[app] = append(r.procs[app], p)
	r.rep.Faults.Starts[app]++
	r.mu.Unlock()
	return p, nil
}

// loadWithFaults runs the load generator for Duration while injecting faults.
func (r *run) loadWithFaults(ctx context.Context) error {
	cfg := r.cfg
	load, err := proc.Start(cfg.Binary, cfg.LogDir, "loadgen", "", cfg.Env,
		"loadgen", "--via", "kinesis", "--stream", r.res.Stream, "--rate", fmt.Sprint(cfg.Rate),
		"--duration", cfg.Duration.String(), "--users", fmt.Sprint(cfg.Users), "--seed", fmt.Sprint(cfg.Seed),
		"--bad-rate", "0.002", "--late-share", "0.02", "--late-max", "2m", "--quiet")
	if err != nil {
		return err
	}
	begin := time.Now()
	defer func() { r.rep.LoadDuration = time.Since(begin) }()
	splitAt, mergeAt := begin.Add(cfg.Duration*3/10), begin.Add(cfg.Duration*6/10)
	if cfg.NoReshard {
		splitAt, mergeAt = time.Time{}, time.Time{}
	}
	faultsOn, faultsOff, restartAt := begin.Add(cfg.Duration*15/100), begin.Add(cfg.Duration*45/100), begin.Add(cfg.Duration*75/100)
	if r.proxy == nil {
		faultsOn, faultsOff, restartAt = time.Time{}, time.Time{}, time.Time{}
	}
	nextFault := begin.Add(r.jitter(cfg.FaultEvery))
	scrape := time.NewTicker(2 * time.Second)
	defer scrape.Stop()
	order := r.rng.Perm(len(Apps))
	faults := 0
	for {
		select {
		case <-ctx.Done():
			load.Kill()
			return ctx.Err()
		case <-load.Exited():
			if err := load.Stop(0); err != nil {
				return fmt.Errorf("loadgen failed: %w\n%s", err, load.Tail(20))
			}
			return nil
		case <-scrape.C:
			r.scrapeAll(ctx)
		case <-time.After(250 * time.Millisecond):
		}
		now := time.Now()
		if !splitAt.IsZero() && now.After(splitAt) {
			splitAt = time.Time{}
			r.split(ctx)
		}
		if !faultsOn.IsZero() && now.After(faultsOn) {
			faultsOn = time.Time{}
			r.logf("fault: proxy injects 3%% throttling, 1%% HTTP 500, 1%% dropped connections until %s", faultsOff.Format("15:04:05"))
			if err := r.proxy.SetFaults(proxyFaults); err != nil {
				return err
			}
		}
		if !faultsOff.IsZero() && now.After(faultsOff) {
			faultsOff = time.Time{}
			r.logf("proxy faults off")
			if err := r.proxy.SetFaults(kinesisproxy.Faults{}); err != nil {
				return err
			}
		}
		if !restartAt.IsZero() && now.After(restartAt) {
			restartAt = time.Time{}
			r.logf("fault: restarting the proxy (down 2s, connections dropped)")
			if err := r.proxy.Restart(ctx, 2*time.Second); err != nil {
				return err
			}
			r.mu.Lock()
			r.rep.Faults.ProxyRestarts++
			r.mu.Unlock()
		}
		if !mergeAt.IsZero() && now.After(mergeAt) {
			mergeAt = time.Time{}
			r.merge(ctx)
		}
		if now.After(nextFault) && now.Before(begin.Add(cfg.Duration-cfg.FaultEvery/2)) {
			// Round-robin over the apps in a shuffled order, so each is hit.
			app := Apps[order[faults%len(Apps)]]
			faults++
			if err := r.consumerFault(ctx, app, (faults-1)/len(Apps)); err != nil {
				return err
			}
			nextFault = time.Now().Add(r.jitter(cfg.FaultEvery))
		}
	}
}

// proxyFaults are injected through the proxy for 30% of the run. A drop
// after the write makes the producer retry a call that succeeded, so the
// stream holds copies of events; the consumers must skip them by event id.
var proxyFaults = kinesisproxy.Faults{ErrorRate: 0.03, Status500Rate: 0.01, DropRate: 0.01, DropAfterRate: 0.02}

// jitter returns d scaled by a random factor in [0.5, 1.5).
func (r *run) jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + r.rng.Float64()))
}

// consumerFault kills a process of app with SIGKILL (restarting it when it
// was the only one, after up to 3 s), or starts a second process beside a
// lone one, so leases move between live owners; a later fault kills one of
// the two. Round 0 (each app's first fault) kills, round 1 starts a second
// process, later rounds start one a third of the time.
func (r *run) consumerFault(ctx context.Context, app string, round int) error {
	r.mu.Lock()
	procs := r.procs[app]
	r.mu.Unlock()
	if len(procs) == 1 && (round == 1 || round > 1 && r.rng.IntN(3) == 0) {
		p, err := r.startConsumer(ctx, app)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.rep.Faults.Concurrent[app]++
		r.mu.Unlock()
		r.logf("fault: started %s beside %s", p.Name, procs[0].Name)
		return nil
	}
	if len(procs) == 0 {
		_, err := r.startConsumer(ctx, app)
		return err
	}
	i := r.rng.IntN(len(procs))
	victim := procs[i]
	r.scrapeOne(ctx, victim)
	victim.Kill()
	r.mu.Lock()
	r.procs[app] = append(append([]*proc.Process(nil), procs[:i]...), procs[i+1:]...)
	left := len(r.procs[app])
	r.rep.Faults.Kills[app]++
	r.mu.Unlock()
	if left > 0 {
		r.logf("fault: kill -9 %s (pid %d); %d left running", victim.Name, victim.Pid(), left)
		return nil
	}
	delay := time.Duration(r.rng.IntN(3000)) * time.Millisecond
	r.logf("fault: kill -9 %s (pid %d); restart in %s", victim.Name, victim.Pid(), delay)
	if err := retry.Sleep(ctx, delay); err != nil {
		return err
	}
	_, err := r.startConsumer(ctx, app)
	return err
}

// scrapeAll samples the fault counters of every running consumer.
func (r *run) scrapeAll(ctx context.Context) {
	r.mu.Lock()
	var all []*proc.Process
	for _, ps := range r.procs {
		all = append(all, ps...)
	}
	r.mu.Unlock()
	for _, p := range all {
		r.scrapeOne(ctx, p)
	}
}

func (r *run) scrapeOne(ctx context.Context, p *proc.Process) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var v [6]float64
	var err error
	fams := []struct {
		name  string
		match []string
	}{
		{"clickstream_consumer_get_records_errors_total", []string{"kind", "throttled"}},
		{"clickstream_consumer_get_records_errors_total", nil},
		{"clickstream_consumer_lease_takes_total", nil},
		{"clickstream_consumer_leases_lost_total", nil},
		{"clickstream_consumer_subscriptions_total", nil},
		{"clickstream_consumer_subscribe_errors_total", nil},
	}
	for i, f := range fams {
		if v[i], err = p.Sum(ctx, f.name, f.match...); err != nil {
			return
		}
	}
	r.mu.Lock()
	r.counters[p] = v
	r.mu.Unlock()
}

func (r *run) sumCounters() {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &r.rep.Faults
	for _, v := range r.counters {
		f.Throttled += v[0]
		f.GetErrors += v[1]
		f.LeaseTakes += v[2]
		f.LeasesLost += v[3]
		f.Subscriptions += v[4]
		f.SubscribeErrors += v[5]
	}
}

// stopAll stops every consumer process gracefully (SIGTERM, then SIGKILL after grace).
func (r *run) stopAll(grace time.Duration) []error {
	r.mu.Lock()
	procs := r.procs
	r.procs = map[string][]*proc.Process{}
	r.mu.Unlock()
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for _, ps := range procs {
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Stop(grace); err != nil {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// cleanup deletes the run's stream, tables and objects.
func (r *run) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := r.cfg.Clients
	c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(r.res.Stream), EnforceConsumerDeletion: aws.Bool(true)})
	for _, t := range []string{r.res.VectorsTable, r.res.MetricsTable, r.res.LeasesTable} {
		c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(t)})
	}
	n := 0
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: aws.String(r.res.Bucket), Prefix: aws.String(r.prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil || len(page.Contents) == 0 {
			break
		}
		var ids []s3types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := c.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(r.res.Bucket), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			break
		}
		n += len(ids)
	}
	r.logf("deleted stream %s, 3 tables and %d objects", r.res.Stream, n)
}

// readModeOf is app's part of a --read-mode list ("poll,vectors=efo"): each
// consumer process runs one application, and consume refuses a name it does
// not run.
func readModeOf(list, app string) string {
	mode := "poll"
	for _, part := range strings.Split(list, ",") {
		name, m, named := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !named:
			mode = name
		case name == app:
			return m
		}
	}
	return mode
}
