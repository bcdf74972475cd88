package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/retry"
)

// HalfLife is the consumers' default half-life, used by the direct computation.
const HalfLife = 7 * 24 * time.Hour

// lastPositions returns the last user-record position of every shard with records.
func lastPositions(t *Truth) map[string]consumers.Position {
	last := map[string]consumers.Position{}
	for i := range t.Records {
		r := &t.Records[i]
		if r.Position.After(last[r.ShardID]) {
			last[r.ShardID] = r.Position
		}
	}
	return last
}

// caughtUp reports which shards app has not yet made durable to their end.
func caughtUp(ls []leases.Lease, t *Truth, last map[string]consumers.Position) []string {
	byShard := map[string]leases.Lease{}
	for _, l := range ls {
		byShard[l.ShardID] = l
	}
	var behind []string
	for _, s := range t.Shards {
		l, ok := byShard[s.ID]
		p, hasRecords := last[s.ID]
		switch {
		case !ok && !hasRecords && s.Open:
		case !ok:
			behind = append(behind, s.ID+" (no lease)")
		case !s.Open:
			if !l.Finished {
				behind = append(behind, fmt.Sprintf("%s (closed, at %s)", s.ID, l.Checkpoint))
			}
		case hasRecords && p.After(l.Checkpoint) && !l.Finished:
			behind = append(behind, fmt.Sprintf("%s (at %s, end %s)", s.ID, l.Checkpoint, p))
		}
	}
	return behind
}

// waitCaughtUp waits until every app's checkpoints cover the whole stream.
func (r *run) waitCaughtUp(ctx context.Context, t *Truth, loadEnd time.Time) error {
	store := leases.NewDynamoStore(r.cfg.Clients.DynamoDB, r.res.LeasesTable)
	last := lastPositions(t)
	deadline := loadEnd.Add(r.cfg.Drain)
	lastLog := time.Now()
	for {
		pending := 0
		var status []string
		for _, app := range Apps {
			if _, ok := r.rep.CaughtUp[app]; ok && r.rep.CaughtUp[app] >= 0 {
				continue
			}
			ls, err := store.List(ctx, app)
			if err != nil {
				return fmt.Errorf("list leases of %s: %w", app, err)
			}
			if behind := caughtUp(ls, t, last); len(behind) > 0 {
				pending++
				status = append(status, fmt.Sprintf("%s behind on %s", app, strings.Join(behind, ", ")))
				continue
			}
			r.rep.CaughtUp[app] = time.Since(loadEnd)
			r.logf("%s caught up after %s", app, r.rep.CaughtUp[app].Round(time.Second))
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, app := range Apps {
				if _, ok := r.rep.CaughtUp[app]; !ok {
					r.rep.CaughtUp[app] = -1
				}
			}
			r.rep.Errors = append(r.rep.Errors, "not caught up within the drain: "+strings.Join(status, "; "))
			return nil
		}
		if time.Since(lastLog) > 20*time.Second {
			r.logf("waiting: %s", strings.Join(status, "; "))
			lastLog = time.Now()
		}
		if err := retry.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
}

// verify reads the three outputs back and checks them against the stream.
func (r *run) verify(ctx context.Context, t *Truth) ([]Check, error) {
	var checks []Check
	checks = append(checks, r.faultChecks()...)

	rows, errKeys, err := ReadArchive(ctx, r.cfg.Clients.S3, r.res.Bucket, r.prefix)
	if err != nil {
		return nil, err
	}
	checks = append(checks, CheckArchive(t.Records, rows, r.prefix, errKeys)...)

	at := time.Now().UTC().Truncate(time.Second)
	want := DirectVectors(t.Records, at, HalfLife)
	got, stored, err := ReadVectors(ctx, r.cfg.Clients.DynamoDB, r.res.VectorsTable, keysOf(want), at)
	if err != nil {
		return nil, err
	}
	checks = append(checks, CheckVectors(want, got, stored)...)

	wantM := DirectMetrics(t.Records)
	gotM, err := ReadMetrics(ctx, r.cfg.Clients.DynamoDB, r.res.MetricsTable, wantM)
	if err != nil {
		return nil, err
	}
	checks = append(checks, CheckMetrics(wantM, gotM)...)
	return checks, nil
}

// faultChecks turn "the faults were really injected" into rows of the table,
// so a run that silently skipped them cannot pass.
func (r *run) faultChecks() []Check {
	f := &r.rep.Faults
	var out []Check
	for _, app := range Apps {
		out = append(out, Check{Name: "faults: kill -9 " + app, Expected: "≥ 1", Got: fmt.Sprint(f.Kills[app]), OK: f.Kills[app] > 0})
	}
	for _, app := range Apps {
		out = append(out, Check{Name: "faults: 2 processes of " + app + " at once", Expected: "≥ 1", Got: fmt.Sprint(f.Concurrent[app]), OK: f.Concurrent[app] > 0})
	}
	if r.proxy != nil {
		out = append(out, Check{Name: "faults: proxy throttles, 500s, drops, restart", Expected: "each ≥ 1",
			Got: fmt.Sprintf("%d, %d, %d, %d", f.ProxyThrottled, f.Proxy500s, f.ProxyDropped, f.ProxyRestarts),
			OK:  f.ProxyThrottled > 0 && f.Proxy500s > 0 && f.ProxyDropped > 0 && f.ProxyRestarts > 0})
		out = append(out, Check{Name: "faults: drops after the write → copies on the stream", Expected: "each ≥ 1",
			Got: fmt.Sprintf("%d, %d", f.ProxyDroppedAfter, r.rep.Duplicates),
			OK:  f.ProxyDroppedAfter > 0 && r.rep.Duplicates > 0})
	}
	if strings.Contains(r.cfg.ReadMode, "efo") {
		// Scraped every 2 s: a run whose fan-out consumers never subscribed
		// (or whose subscriptions were never counted) cannot pass.
		out = append(out, Check{Name: "enhanced fan-out: subscriptions (" + r.cfg.ReadMode + ")", Expected: "≥ 1",
			Got: fmt.Sprintf("%.0f (%.0f failed or broken)", f.Subscriptions, f.SubscribeErrors), OK: f.Subscriptions > 0})
	}
	if !r.cfg.NoReshard {
		c := Check{Name: "faults: split + merge", Expected: "1 + 1", Got: fmt.Sprintf("%d + %d", f.Splits, f.Merges), OK: f.Splits == 1 && f.Merges == 1}
		c.Examples = f.ReshardErrors
		out = append(out, c)
	}
	for _, app := range Apps {
		d := r.rep.CaughtUp[app]
		got := "no"
		if d >= 0 {
			got = fmt.Sprintf("yes, after %s", d.Round(time.Second))
		}
		out = append(out, Check{Name: "drain: " + app + " caught up", Expected: "within " + r.cfg.Drain.String(), Got: got, OK: d >= 0})
	}
	return out
}

// S3API is what reading the archive calls.
type S3API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

func listKeys(ctx context.Context, api S3API, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// ReadArchive reads every row of every archive object under prefix, and
// lists the dead-letter keys.
func ReadArchive(ctx context.Context, api S3API, bucket, prefix string) ([]archive.Row, []string, error) {
	base := prefix
	if base != "" {
		base += "/"
	}
	keys, err := listKeys(ctx, api, bucket, base+"events/")
	if err != nil {
		return nil, nil, err
	}
	errKeys, err := listKeys(ctx, api, bucket, base+"errors/")
	if err != nil {
		return nil, nil, err
	}
	var (
		mu   sync.Mutex
		rows []archive.Row
	)
	err = parallel(ctx, len(keys), 8, func(ctx context.Context, i int) error {
		k := keys[i]
		if _, err := archive.ParseObjectKey(prefix, k); err != nil {
			return fmt.Errorf("foreign object under events/: %s: %w", k, err)
		}
		out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			return fmt.Errorf("get %s: %w", k, err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		rs, err := parquet.Read[archive.Row](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return fmt.Errorf("parquet %s: %w", k, err)
		}
		mu.Lock()
		rows = append(rows, rs...)
		mu.Unlock()
		return nil
	})
	return rows, errKeys, err
}

// ReadVectors reads the users' vectors decayed to at, and counts the items
// of the table.
func ReadVectors(ctx context.Context, db vectors.DynamoDBAPI, table string, users []string, at time.Time) (map[string]*vectors.Vector, int, error) {
	rd := vectors.NewReader(db, vectors.ReaderConfig{Table: table, ConsistentRead: true})
	var mu sync.Mutex
	got := map[string]*vectors.Vector{}
	err := parallel(ctx, len(users), 8, func(ctx context.Context, i int) error {
		v, err := rd.Get(ctx, users[i], at, 0)
		if errors.Is(err, vectors.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get vector of %s: %w", users[i], err)
		}
		mu.Lock()
		got[users[i]] = v
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	sc, ok := db.(interface {
		Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	})
	if !ok {
		return nil, 0, errors.New("vectors: the DynamoDB client cannot Scan")
	}
	n := 0
	in := &dynamodb.ScanInput{TableName: aws.String(table), Select: dtypes.SelectCount}
	for {
		out, err := sc.Scan(ctx, in)
		if err != nil {
			return nil, 0, fmt.Errorf("count %s: %w", table, err)
		}
		n += int(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return got, n, nil
}

// ReadMetrics queries both built-in metrics over the windows of want,
// including windows not yet published.
func ReadMetrics(ctx context.Context, db metrics.DynamoAPI, table string, want map[string]*MetricGroup) (map[string][]metrics.ResultRow, error) {
	var from, to time.Time
	for _, g := range want {
		if from.IsZero() || g.Window.Before(from) {
			from = g.Window
		}
		if g.Window.Add(time.Minute).After(to) {
			to = g.Window.Add(time.Minute)
		}
	}
	out := map[string][]metrics.ResultRow{}
	if from.IsZero() {
		return out, nil
	}
	// One extra minute either side: rows there would be extras.
	from, to = from.Add(-time.Minute), to.Add(time.Minute)
	rd := metrics.NewReader(metrics.NewDynamoStore(db, table), metrics.ReaderConfig{})
	for metric := range exactValues {
		res, err := rd.Query(ctx, metrics.Query{Metric: metric, From: from, To: to, IncludeOpen: true})
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", metric, err)
		}
		out[metric] = res.Rows
	}
	return out, nil
}

// parallel runs fn(0..n-1) with at most conc in flight; the first error wins.
func parallel(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	next := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	return first
}

func keysOf[V any](m map[string]V) []string { return sortedKeys(m) }
