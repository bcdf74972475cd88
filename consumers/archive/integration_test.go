package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"go.uber.org/goleak"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/producers"
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

// itEnv is one integration test's private stream, lease table and bucket.
type itEnv struct {
	c      *awsx.Clients
	stream string
	table  string
	bucket string
}

func newITEnv(t *testing.T, shards int) *itEnv {
	t.Helper()
	c := testenv.Clients(t)
	e := &itEnv{c: c, bucket: testenv.Bucket(t, c)}
	if shards > 0 {
		e.stream = testenv.Stream(t, c, shards)
		e.table = testenv.Table(t, c, setup.LeasesTable)
	}
	return e
}

// runnerConfig is the runtime configured as `clickstream consume archive`
// wires it (dead letters into the archive's bucket and prefix), with
// test-speed timings.
func (e *itEnv) runnerConfig(p consumers.Processor, prefix, owner string, log *slog.Logger) consumers.Config {
	return consumers.Config{
		Stream: e.stream, Processor: p, Kinesis: e.c.Kinesis,
		Leases:     leases.NewDynamoStore(e.c.DynamoDB, e.table),
		DeadLetter: consumers.NewS3DeadLetter(e.c.S3, e.bucket, prefix),
		Owner:      owner, LeaseDuration: 1500 * time.Millisecond, RenewInterval: 300 * time.Millisecond,
		ShardSyncInterval: time.Second, PollInterval: 50 * time.Millisecond, IdleInterval: 150 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, ShutdownTimeout: 20 * time.Second, Logger: log,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ARCHIVE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// produce puts raw events on the stream with the project's producer (KPL
// aggregation on), keyed like the collector does, and waits until sent.
func (e *itEnv) produce(t testing.TB, ctx context.Context, events [][]byte) {
	t.Helper()
	var mu sync.Mutex
	var failed []error
	p, err := producers.New(e.c.Kinesis, e.stream, producers.WithLinger(50*time.Millisecond),
		producers.WithOnFailure(func(r producers.Record, err error) { mu.Lock(); failed = append(failed, err); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	for i, data := range events {
		key := fmt.Sprint("k-", i%97)
		if ev, err := event.Decode(data); err == nil {
			key = ev.PartitionKey()
		}
		if err := p.Put(ctx, producers.Record{PartitionKey: key, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Fatalf("%d records failed to send, first: %v", len(failed), failed[0])
	}
}

// archived is the archive as read back from S3.
type archived struct {
	objects map[string][]Row
}

// readArchive downloads and decodes every object under prefix/events/.
// Every object must be a complete Parquet file.
func readArchive(t testing.TB, ctx context.Context, c *awsx.Clients, bucket, prefix string) archived {
	t.Helper()
	out := archived{objects: map[string][]Row{}}
	err := listObjects(ctx, c.S3, bucket, normPrefix(prefix)+"events/", func(key string, size int64, _ time.Time) {
		b := getObject(t, ctx, c, bucket, key)
		rows, err := parquet.Read[Row](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("object %s (%d bytes) is not a complete Parquet file: %v", key, len(b), err)
		}
		out.objects[key] = rows
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getObject(t testing.TB, ctx context.Context, c *awsx.Clients, bucket, key string) []byte {
	t.Helper()
	o, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)},
		func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer o.Body.Close()
	b, err := io.ReadAll(o.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// rowsByID indexes every row by event id, reporting duplicates.
func (a archived) rowsByID(t testing.TB) (map[string]Row, map[string]string, int) {
	t.Helper()
	byID := map[string]Row{}
	where := map[string]string{}
	dups := 0
	for _, key := range sortedKeys(a.objects) {
		for _, r := range a.objects[key] {
			if prev, ok := where[r.ID]; ok {
				dups++
				if dups <= 5 {
					t.Errorf("event %s archived twice: %s (%s/%d) and %s (%s/%d)", r.ID, prev, byID[r.ID].SequenceNumber,
						byID[r.ID].SubSequenceNumber, key, r.SequenceNumber, r.SubSequenceNumber)
				}
				continue
			}
			byID[r.ID], where[r.ID] = r, key
		}
	}
	return byID, where, dups
}

// checkArchived verifies the archive against the events produced: every
// valid event exactly once, with the right values, in the partition its
// type and event time say, in an object named after the rows it holds.
func checkArchived(t testing.TB, prefix string, a archived, events [][]byte) {
	t.Helper()
	byID, where, dups := a.rowsByID(t)
	good := 0
	for _, data := range events {
		ev, err := event.Decode(data)
		if err != nil {
			continue
		}
		good++
		row, ok := byID[ev.ID]
		if !ok {
			t.Errorf("event %s is not archived", ev.ID)
			continue
		}
		info, err := ParseObjectKey(prefix, where[ev.ID])
		if err != nil {
			t.Fatal(err)
		}
		p := PartitionOf(ev.Type, ev.TS)
		if info.Type != ev.Type || info.Date != p.Date() || info.Hour != p.HourString() || info.ShardID != row.ShardID {
			t.Errorf("event %s (type %q, ts %s) is in %s", ev.ID, ev.Type, ev.TS, where[ev.ID])
		}
		if row.ArrivalTS == 0 {
			t.Errorf("event %s has no arrival_ts", ev.ID)
		}
		want := RowOf(&consumers.Record{
			Position:    consumers.Position{SequenceNumber: row.SequenceNumber, SubSequence: row.SubSequenceNumber},
			ShardID:     row.ShardID,
			ArrivalTime: time.UnixMilli(row.ArrivalTS),
			Event:       ev,
		})
		if !rowsEqual(row, want) {
			t.Errorf("event %s:\n got %+v\nwant %+v", ev.ID, row, want)
		}
	}
	if len(byID) != good || dups > 0 {
		t.Errorf("archive holds %d distinct events and %d duplicates; %d valid events were produced", len(byID), dups, good)
	}
	for key, rows := range a.objects {
		info, _ := ParseObjectKey(prefix, key)
		first := consumers.Position{SequenceNumber: rows[0].SequenceNumber, SubSequence: rows[0].SubSequenceNumber}
		last := consumers.Position{SequenceNumber: rows[len(rows)-1].SequenceNumber, SubSequence: rows[len(rows)-1].SubSequenceNumber}
		if first != info.First || last != info.Last {
			t.Errorf("object %s holds %s..%s", key, first, last)
		}
	}
}

// checkDeadLetters verifies that errors/ holds each bad event exactly once
// with a reason.
func checkDeadLetters(t testing.TB, ctx context.Context, c *awsx.Clients, bucket, prefix string, events [][]byte) {
	t.Helper()
	bad := map[string]int{}
	for _, data := range events {
		if _, err := event.Decode(data); err != nil {
			bad[string(data)]++
		}
	}
	got := map[string]int{}
	n := 0
	keyRE := regexp.MustCompile(`^` + regexp.QuoteMeta(normPrefix(prefix)) + `errors/dt=\d{4}-\d{2}-\d{2}/shardId-\d+/\d+-\d+\.json$`)
	err := listObjects(ctx, c.S3, bucket, normPrefix(prefix)+"errors/", func(key string, _ int64, _ time.Time) {
		n++
		if !keyRE.MatchString(key) {
			t.Errorf("dead letter key %s does not follow the layout", key)
		}
		var e consumers.DeadLetterEntry
		if err := json.Unmarshal(getObject(t, ctx, c, bucket, key), &e); err != nil {
			t.Errorf("dead letter %s: %v", key, err)
			return
		}
		if e.Reason == "" || e.ShardID == "" || e.SequenceNumber == "" {
			t.Errorf("dead letter %s lacks reason, shard or sequence: %+v", key, e)
		}
		got[string(e.Data)]++
	})
	if err != nil {
		t.Fatal(err)
	}
	for data, want := range bad {
		if got[data] != want {
			t.Errorf("bad record %q: %d dead letters, want %d", data, got[data], want)
		}
	}
	if total := sumValues(bad); n != total {
		t.Errorf("%d dead letters for %d bad records", n, total)
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkNoUnfinishedUploads fails if a multipart upload was left behind.
func checkNoUnfinishedUploads(t testing.TB, ctx context.Context, c *awsx.Clients, bucket string) {
	t.Helper()
	out, err := c.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range out.Uploads {
		t.Errorf("unfinished multipart upload left behind: %s", aws.ToString(u.Key))
	}
}

// waitForRows polls the archive until it holds want rows, reading the
// footer of each new object once.
func waitForRows(t testing.TB, ctx context.Context, c *awsx.Clients, bucket, prefix string, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	counted := map[string]int64{} // key@size -> rows
	var last int64
	var err error
	for {
		var total int64
		seen := map[string]bool{}
		err = listObjects(ctx, c.S3, bucket, normPrefix(prefix)+"events/", func(key string, size int64, _ time.Time) {
			id := fmt.Sprint(key, "@", size)
			seen[id] = true
			n, ok := counted[id]
			if !ok {
				var cerr error
				if n, cerr = countRows(ctx, c.S3, bucket, key, size); cerr != nil {
					err = cerr
					return
				}
				counted[id] = n
			}
			total += n
		})
		for id := range counted {
			if !seen[id] {
				delete(counted, id)
			}
		}
		if err == nil {
			last = total
			if total >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive holds %d rows after %v, want %d (last error %v)", last, timeout, want, err)
		}
		time.Sleep(time.Second)
	}
}

func countGood(events [][]byte) int {
	n := 0
	for _, data := range events {
		if _, err := event.Decode(data); err == nil {
			n++
		}
	}
	return n
}

func TestS3Store_LargeObjectsUseMultipartAndAreNeverHalfVisible(t *testing.T) {
	e := newITEnv(t, 0)
	ctx := context.Background()
	cfg, _ := Config{Bucket: e.bucket, PartSize: MinPartSize, PartConcurrency: 2}.withDefaults()
	m, _ := newMetrics(nil)
	st := newS3Store(e.c.S3, cfg, m)

	body := make([]byte, 12<<20) // three parts
	_, _ = rand.Read(body)
	if err := st.Put(ctx, "events/type=x/dt=2026-11-22/hour=10/big.parquet", body); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, ctx, e.c, e.bucket, "events/type=x/dt=2026-11-22/hour=10/big.parquet"); !bytes.Equal(got, body) {
		t.Fatalf("multipart object differs: %d bytes back, %d put", len(got), len(body))
	}
	head, err := e.c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("events/type=x/dt=2026-11-22/hour=10/big.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.Contains(etag, "-3") {
		t.Errorf("ETag %s: want a 3-part multipart upload", etag)
	}
	if aws.ToString(head.ContentType) != ContentType {
		t.Errorf("content type %q", aws.ToString(head.ContentType))
	}

	// A process killed mid-upload leaves an unfinished multipart upload:
	// the object is not visible, and the redo's AbortUploads cleans it up.
	key := "events/type=x/dt=2026-11-22/hour=10/killed.parquet"
	up, err := e.c.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.S3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(e.bucket), Key: aws.String(key), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(body[:MinPartSize])}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)}); err == nil {
		t.Error("a half-uploaded object is visible")
	}
	if err := st.AbortUploads(ctx, key); err != nil {
		t.Fatal(err)
	}
	checkNoUnfinishedUploads(t, ctx, e.c, e.bucket)

	// A cancelled upload leaves neither an object nor parts.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := st.Put(cctx, "events/type=x/dt=2026-11-22/hour=10/cancelled.parquet", body); err == nil {
		t.Log("upload finished before the cancel; nothing to check")
	} else if _, err := e.c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("events/type=x/dt=2026-11-22/hour=10/cancelled.parquet")}); err == nil {
		t.Error("a cancelled upload is visible")
	}
	time.Sleep(200 * time.Millisecond) // the manager aborts asynchronously to the cancel
	checkNoUnfinishedUploads(t, ctx, e.c, e.bucket)

	if err := st.Delete(ctx, []string{"events/type=x/dt=2026-11-22/hour=10/big.parquet", "missing/key"}); err != nil {
		t.Fatal(err)
	}
	inv, err := List(ctx, e.c.S3, e.bucket, "", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Files != 0 {
		t.Errorf("after Delete: %+v", inv)
	}
}

func TestArchive_KnownEventsArchivedExactlyOnceInTheirPartitions(t *testing.T) {
	e := newITEnv(t, 2)
	ctx := context.Background()
	const prefix = "lake"
	events := genEvents(2000, 42)
	// Late events: produced last, a day and more behind the rest.
	for i := range 50 {
		ts := epoch.Add(-time.Duration(26+i%5) * time.Hour).Add(time.Duration(i) * time.Minute)
		events = append(events, fmt.Appendf(nil, `{"id":"late-%d","type":"click","ts":%q,"user_id":"u-%d","features":{"cat:late":1}}`,
			i, ts.Format(time.RFC3339Nano), i))
	}
	reg := newTestRegistry()
	a, err := New(e.c.S3, Config{Bucket: e.bucket, Prefix: prefix, MaxAge: 2 * time.Second, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	r, err := consumers.NewRunner(e.runnerConfig(a, prefix, "it-1", testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	e.produce(t, ctx, events[:1000])
	e.produce(t, ctx, events[1000:])
	good := countGood(events)
	waitForRows(t, ctx, e.c, e.bucket, prefix, int64(good), 90*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	got := readArchive(t, ctx, e.c, e.bucket, prefix)
	checkArchived(t, prefix, got, events)
	checkDeadLetters(t, ctx, e.c, e.bucket, prefix, events)
	checkNoUnfinishedUploads(t, ctx, e.c, e.bucket)

	// Partitions: several types (one needing escaping), several hours,
	// the late day.
	inv, err := Stats(ctx, e.c.S3, e.bucket, prefix, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	types, days := map[string]bool{}, map[string]bool{}
	for _, p := range inv.Partitions {
		types[p.Type], days[p.Date] = true, true
	}
	if !types["click"] || !types["impression"] || !types["access"] || !types["page view/x=1"] || !days["2026-11-21"] || len(inv.Partitions) < 15 {
		t.Errorf("partitions: %d, types %v, days %v", len(inv.Partitions), types, days)
	}
	if inv.Rows != int64(good) || inv.Files != len(got.objects) || inv.DeadLetters != len(events)-good {
		t.Errorf("Stats = rows %d files %d dead letters %d; want %d, %d, %d", inv.Rows, inv.Files, inv.DeadLetters, good, len(got.objects), len(events)-good)
	}
	var text strings.Builder
	if err := inv.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "type=page%20view%2Fx%3D1/dt=") || !strings.Contains(text.String(), fmt.Sprint(good)) {
		t.Errorf("stats text:\n%s", text.String())
	}
	clicks, err := List(ctx, e.c.S3, e.bucket, prefix, Filter{Type: "click", From: epoch.Add(-time.Hour), To: epoch.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(clicks.Partitions) != 2 || clicks.Partitions[0].Hour != "09" || clicks.Partitions[1].Hour != "10" {
		t.Errorf("List(click, 09:00-11:00) = %+v", clicks.Partitions)
	}
	if v := reg.value(t, "clickstream_archive_rows_total"); v != float64(good) {
		t.Errorf("rows_total = %v, want %d", v, good)
	}

	t.Run("DuckDBReadsTheFiles", func(t *testing.T) { checkWithDuckDB(t, ctx, e, prefix, got, events) })
}
