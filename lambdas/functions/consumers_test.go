package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/lambdas/functions"
)

var (
	update     = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")
	regenerate = flag.Bool("regenerate-events", false, "rewrite testdata/mixed.event.json")
)

// The golden events: the adapter's four (plain records, KPL aggregates from
// both aggregators, a corrupt aggregate, an invalid event) and "mixed"
// (clicks and impressions with features, an aggregate, access logs, a
// record that is not JSON).
var goldenEvents = []string{"plain", "aggregated", "corrupt-aggregate", "invalid-event", "mixed"}

// at is when vectors are decayed to in golden files.
var at = time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)

// env is one handler's private resources.
type env struct {
	c                               *awsx.Clients
	bucket, prefix                  string
	vectorsTable, metricsTable, lse string
}

func newEnv(t *testing.T, c *awsx.Clients, bucket, prefix string) env {
	return env{c: c, bucket: bucket, prefix: prefix,
		vectorsTable: testenv.Table(t, c, setup.VectorsTable),
		metricsTable: testenv.Table(t, c, setup.MetricsTable),
		lse:          testenv.Table(t, c, setup.LeasesTable)}
}

func (e env) config() functions.Config {
	return functions.Config{Stream: "clickstream-events", LeasesTable: e.lse, StateOwner: "test",
		Settings: apps.Settings{Bucket: e.bucket, Prefix: e.prefix, VectorsTable: e.vectorsTable, MetricsTable: e.metricsTable}}
}

func (e env) handler(t *testing.T, name string) functions.KinesisHandler {
	t.Helper()
	h, err := functions.NewConsumer(name, e.c, e.config())
	if err != nil {
		t.Fatal(err)
	}
	return h.Handle
}

// output is what a golden file records of one handler's run.
func (e env) output(t *testing.T, name string, resp events.KinesisEventResponse) []byte {
	t.Helper()
	if resp.BatchItemFailures == nil {
		resp.BatchItemFailures = []events.KinesisBatchItemFailure{}
	}
	out := map[string]any{"response": resp, "dead_letters": relKeys(listKeys(t, e.c, e.bucket, e.prefix+"errors/"), e.prefix)}
	switch name {
	case functions.Archive:
		keys, rows := archiveRows(t, e.c, e.bucket, e.prefix)
		out["objects"], out["rows"] = keys, rows
	case functions.Vectors:
		out["vectors"] = vectorsOf(t, e.c, e.vectorsTable, scanUsers(t, e.c, e.vectorsTable), at)
	case functions.Metrics:
		out["metrics"] = metricsOf(t, e.c, e.metricsTable, at.Add(-2*time.Hour), at)
	}
	return mustJSON(t, out)
}

func relKeys(keys []string, prefix string) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k[len(prefix):])
	}
	return out
}

// scanUsers lists the users of a vectors table (test-only Scan).
func scanUsers(t *testing.T, c *awsx.Clients, table string) []string {
	t.Helper()
	out, err := c.DynamoDB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ProjectionExpression: aws.String("user_id")})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, it := range out.Items {
		users = append(users, it["user_id"].(*types.AttributeValueMemberS).Value)
	}
	slices.Sort(users)
	return users
}

func TestConsumers_GoldenEvents(t *testing.T) {
	if *regenerate {
		writeMixedEvent(t)
	}
	c := testenv.Clients(t)
	bucket := testenv.Bucket(t, c)
	for _, ev := range goldenEvents {
		for _, name := range apps.Names() {
			t.Run(ev+"/"+name, func(t *testing.T) {
				e := newEnv(t, c, bucket, ev+"/"+name+"/")
				resp, err := e.handler(t, name)(context.Background(), readEvent(t, ev))
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.BatchItemFailures) != 0 {
					t.Fatalf("failures %v: bad records must never fail a batch", resp.BatchItemFailures)
				}
				checkGolden(t, ev+"."+name, e.output(t, name, resp))
			})
		}
	}
}

// TestConsumers_FailureReportsTheFirstRecordAndTheRetryConverges runs each
// handler with its output store missing: the invocation must report the
// first record as failed (nothing is durable), and the retry Lambda makes
// from there, once the store exists, must give exactly the golden output.
func TestConsumers_FailureReportsTheFirstRecordAndTheRetryConverges(t *testing.T) {
	c := testenv.Clients(t)
	ev := readEvent(t, "mixed")
	ctx := context.Background()
	for _, name := range apps.Names() {
		t.Run(name, func(t *testing.T) {
			bucket := testenv.Bucket(t, c)
			e := newEnv(t, c, bucket, "")
			// The store the function writes to does not exist yet.
			switch name {
			case functions.Archive:
				e.bucket = testenv.Name("missing")
			case functions.Vectors:
				e.vectorsTable = testenv.Name("missing")
			case functions.Metrics:
				e.metricsTable = testenv.Name("missing")
			}
			h := e.handler(t, name)
			resp, err := h(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			first := ev.Records[0].Kinesis.SequenceNumber
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != first {
				t.Fatalf("failures %+v, want the first record %s", resp.BatchItemFailures, first)
			}
			// The store appears; the mapping retries from the failed record
			// with a fresh instance (the old one may be gone).
			e = newEnv(t, c, bucket, "")
			resp, err = e.handler(t, name)(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "mixed."+name, e.output(t, name, resp))
		})
	}
}

// TestArchive_RedeliveredBatchWritesTheSameObjects: Lambda may deliver a
// batch again although the function finished it (a timeout after the
// flush). The state in the lease table makes the archive skip what it
// wrote; and after a crash between "pending saved" and the uploads, the
// retry writes exactly the pending objects.
func TestArchive_RedeliveredBatchWritesTheSameObjects(t *testing.T) {
	c := testenv.Clients(t)
	e := newEnv(t, c, testenv.Bucket(t, c), "")
	ev := readEvent(t, "mixed")
	ctx := context.Background()
	for i := range 2 {
		resp, err := e.handler(t, functions.Archive)(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("invocation %d: %v %v", i, resp, err)
		}
	}
	checkGolden(t, "mixed."+functions.Archive, e.output(t, functions.Archive, events.KinesisEventResponse{}))
	shard := "shardId-000000000006"
	l, err := leases.NewDynamoStore(c.DynamoDB, e.lse).Get(ctx, functions.Archive, shard)
	if err != nil {
		t.Fatalf("the archive's state lease: %v", err)
	}
	if l.Epoch != 2 || l.Owner != "test" || len(l.State) == 0 {
		t.Fatalf("state lease %+v: want taken once per invocation, with the written position", l)
	}
	// A later batch of the same shard goes on from there.
	var later events.KinesisEvent
	for i, r := range ev.Records[:2] {
		r.Kinesis.SequenceNumber = fmt.Sprint("99", i, r.Kinesis.SequenceNumber)
		r.EventID = shard + ":" + r.Kinesis.SequenceNumber
		later.Records = append(later.Records, r)
	}
	if resp, err := e.handler(t, functions.Archive)(ctx, later); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("later batch: %v %v", resp, err)
	}
	keys, _ := archiveRows(t, c, e.bucket, "")
	var infos []archive.ObjectInfo
	for _, k := range keys {
		info, err := archive.ParseObjectKey("", k)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	if len(infos) < 2 {
		t.Fatalf("objects %v", keys)
	}
}

func TestConfigFromEnv_ReadsTheInfraContract(t *testing.T) {
	env := map[string]string{
		"CLICKSTREAM_STREAM": "s", "CLICKSTREAM_BUCKET": "b", "CLICKSTREAM_PREFIX": "p",
		"CLICKSTREAM_VECTORS_TABLE": "v", "CLICKSTREAM_METRICS_TABLE": "m", "CLICKSTREAM_LEASES_TABLE": "l",
		"CLICKSTREAM_LOG_LEVEL": "debug", "CLICKSTREAM_ALLOWED_ORIGINS": "https://a.example, https://b.example",
		"CLICKSTREAM_API_KEYS_SECRET_ARN": "arn:secret",
	}
	cfg, lv, err := functions.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stream != "s" || cfg.Bucket != "b" || cfg.Prefix != "p" || cfg.VectorsTable != "v" || cfg.MetricsTable != "m" ||
		cfg.LeasesTable != "l" || cfg.APIKeysSecretARN != "arn:secret" || lv.String() != "DEBUG" ||
		!slices.Equal(cfg.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
		t.Fatalf("config %+v level %v", cfg, lv)
	}
	env["CLICKSTREAM_LOG_LEVEL"] = "loud"
	if _, _, err := functions.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil {
		t.Fatal("bad log level accepted")
	}
	// Every variable infra/lambda.tf sets is one this package reads.
	tf, err := os.ReadFile(filepath.Join("..", "..", "infra", "lambda.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range env {
		if !bytes.Contains(tf, []byte(k)) {
			t.Errorf("infra/lambda.tf does not set %s", k)
		}
	}
}

// writeMixedEvent regenerates testdata/mixed.event.json.
func writeMixedEvent(t *testing.T) {
	shard := "shardId-000000000006"
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123_000_000, time.UTC)
	arrival := time.Date(2026, 11, 22, 10, 0, 1, 250_000_000, time.UTC)
	var a kpl.Aggregator
	for i := range 3 {
		u := fmt.Sprintf("u-agg-%d", i%2)
		a.Add(kpl.Record{PartitionKey: u, Data: clickJSON(fmt.Sprintf("agg-%d", i), u, "click", ts.Add(time.Duration(i)*time.Second), `{"cat:sports":1,"tag:soccer":0.5}`)})
	}
	agg, aggPK, _ := a.Build()
	datas := []struct {
		pk   string
		data []byte
	}{
		{"u-1", clickJSON("m-1", "u-1", "impression", ts, `{"cat:sports":1,"cat:news":1}`)},
		{"u-1", clickJSON("m-2", "u-1", "click", ts.Add(2*time.Second), `{"cat:sports":1}`)},
		{aggPK, agg},
		{"u-2", []byte(`not json at all`)},
		{"e-a1", accessJSON("a-1", "/api/items/:id", "HIT", 200, ts.Add(3*time.Second), 12.5)},
		{"e-a2", accessJSON("a-2", "/api/items/:id", "MISS", 200, ts.Add(4*time.Second), 80)},
		{"e-a3", accessJSON("a-3", "/api/feed", "EXPIRED", 503, ts.Add(61*time.Second), 250)},
		{"u-2", clickJSON("m-3", "u-2", "impression", ts.Add(70*time.Second), `{"cat:music":2}`)},
	}
	var ev events.KinesisEvent
	for i, d := range datas {
		seq := fmt.Sprintf("4959033827149025660855969253836157109592157598913658%04d", 1000+i)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			AwsRegion: "us-east-1", EventID: shard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
			EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/clickstream-events", EventVersion: "1.0",
			InvokeIdentityArn: "arn:aws:iam::123456789012:role/clickstream-consumer",
			Kinesis: events.KinesisRecord{ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival.Add(time.Duration(i) * time.Second)},
				Data: d.data, PartitionKey: d.pk, SequenceNumber: seq, KinesisSchemaVersion: "1.0"},
		})
	}
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "mixed.event.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsumers_ReportTheirFiguresAsEMF runs the vectors function on the
// mixed golden event (bad records among good ones) and reads back the EMF
// line the consumer main writes after each invocation: valid EMF, in the
// Clickstream namespace, with the runtime's and the processor's figures.
func TestConsumers_ReportTheirFiguresAsEMF(t *testing.T) {
	c := testenv.Clients(t)
	e := newEnv(t, c, testenv.Bucket(t, c), "emf/")
	reg := prometheus.NewRegistry()
	cfg := e.config()
	cfg.Registerer = reg
	h, err := functions.NewConsumer(functions.Vectors, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := readEvent(t, "mixed")
	if _, err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := functions.MetricsEmitter(reg, functions.Vectors, "").Emit(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	var vals map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.Bytes())
	}
	_ = json.Unmarshal(buf.Bytes(), &vals)
	if len(doc.AWS.CloudWatchMetrics) == 0 || doc.AWS.CloudWatchMetrics[0].Namespace != functions.MetricsNamespace ||
		vals["Function"] != "clickstream-vectors" || doc.AWS.Timestamp == 0 {
		t.Fatalf("EMF envelope: %s", buf.Bytes())
	}
	declared := map[string]bool{}
	for _, d := range doc.AWS.CloudWatchMetrics {
		for _, m := range d.Metrics {
			declared[m.Name] = true
		}
	}
	num := func(name string) float64 {
		v, ok := vals[name].(float64)
		if !ok || !declared[name] {
			t.Errorf("%s missing from the EMF line", name)
		}
		return v
	}
	if n := num("clickstream_consumer_records_total"); int(n) == 0 {
		t.Errorf("records_total = %v", n)
	}
	if n := num("clickstream_consumer_bad_records_total"); n == 0 {
		t.Errorf("bad_records_total = %v: the mixed event holds bad records", n)
	}
	if num("clickstream_vectors_events_total_click")+num("clickstream_vectors_events_total_impression") == 0 {
		t.Error("no vector events")
	}
	num("clickstream_vectors_dynamodb_calls_total")
	num("clickstream_vectors_batch_seconds_count")
}
