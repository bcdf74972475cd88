package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/lab/chaos"
	"github.com/clickstream-go/clickstream/lab/proc"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

// TestIntegration_RetriedPutRecordsChangeNoOutput drops the connection after
// a fifth of the PutRecords calls were applied, so the producer retries
// calls that succeeded and the stream holds copies of events. The three
// consumers must still equal the direct computation over the distinct
// events, and each must count the copies it skipped.
func TestIntegration_RetriedPutRecordsChangeNoOutput(t *testing.T) {
	c := testenv.Clients(t)
	ctx := context.Background()
	stream, bucket := testenv.Name("dup"), testenv.Bucket(t, c)
	vt, mt, lt := testenv.Name("dup-vectors"), testenv.Name("dup-metrics"), testenv.Name("dup-leases")
	t.Cleanup(func() {
		c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
		for _, tb := range []string{vt, mt, lt} {
			c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(tb)})
		}
	})
	res := []string{"--stream", stream, "--bucket", bucket, "--vectors-table", vt, "--metrics-table", mt, "--leases-table", lt}
	mustRun(t, append([]string{"setup", "--shards", "2"}, res...)...)

	consAddr := freeAddr(t)
	stopConsume := background(t, append([]string{"consume", "archive", "vectors", "metrics", "--metrics-addr", consAddr,
		"--archive-max-age", "2s", "--lease-duration", "3s", "--poll-interval", "100ms"}, res...)...)
	waitHealthy(t, consAddr)

	// The producer reaches Kinesis through a proxy that applies a fifth of
	// the PutRecords calls and then drops the connection.
	ps := proxytest.Start(t, c, kinesisproxy.Config{Faults: kinesisproxy.Faults{DropAfterRate: 0.2, Operations: []string{"PutRecords"}}})
	p, err := producers.New(ps.Kinesis, stream, producers.WithLogger(slog.New(slog.DiscardHandler)), producers.WithLinger(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	st, err := loadgen.Run(ctx, loadgen.Config{GeneratorConfig: loadgen.GeneratorConfig{Seed: 9, Users: 40},
		Events: 2000, BatchSize: 100, Concurrency: 4}, loadgen.ProducerSink{P: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil || st.Sent != 2000 {
		t.Fatalf("producer: %v; loadgen %s", err, st)
	}
	if ps.Stats().DroppedAfter == 0 {
		t.Fatal("the proxy dropped no connection after a write")
	}

	truth, err := chaos.ReadTruth(ctx, c.Kinesis, stream)
	if err != nil {
		t.Fatal(err)
	}
	dups := truth.Duplicates()
	t.Logf("stream: %d user records for %d events, %d copies, %d copies the window cannot see", len(truth.Records), st.Sent, dups, truth.CopiesLeft())
	if dups == 0 || len(truth.Records) != int(st.Sent)+dups || truth.CopiesLeft() != 0 {
		t.Fatalf("stream holds %d records, %d marked copies, %d copies left, for %d distinct events", len(truth.Records), dups, truth.CopiesLeft(), st.Sent)
	}

	// Every application skipped every copy, and says so on /metrics.
	waitFor(t, 2*time.Minute, "every application to hand every record", func() bool {
		got := scrapeSum(t, consAddr, "clickstream_consumer_records_total")
		return got["archive"] >= float64(len(truth.Records)) && got["vectors"] >= float64(len(truth.Records)) && got["metrics"] >= float64(len(truth.Records))
	})
	gotDups := scrapeSum(t, consAddr, "clickstream_consumer_duplicate_events_total")
	for _, app := range chaos.Apps {
		if gotDups[app] != float64(dups) {
			t.Errorf("%s: clickstream_consumer_duplicate_events_total = %v, want %d", app, gotDups[app], dups)
		}
	}
	if code, logs := stopConsume(); code != 0 { // flushes the archive and every metric window
		t.Fatalf("consume exit %d:\n%s", code, logs)
	}

	var checks []chaos.Check
	rows, errKeys, err := chaos.ReadArchive(ctx, c.S3, bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	checks = append(checks, chaos.CheckArchive(truth.Records, rows, "", errKeys)...)
	at := time.Now().UTC().Truncate(time.Second)
	want := chaos.DirectVectors(truth.Records, at, chaos.HalfLife)
	users := make([]string, 0, len(want))
	for u := range want {
		users = append(users, u)
	}
	got, stored, err := chaos.ReadVectors(ctx, c.DynamoDB, vt, users, at)
	if err != nil {
		t.Fatal(err)
	}
	checks = append(checks, chaos.CheckVectors(want, got, stored)...)
	wantM := chaos.DirectMetrics(truth.Records)
	gotM, err := chaos.ReadMetrics(ctx, c.DynamoDB, mt, wantM)
	if err != nil {
		t.Fatal(err)
	}
	checks = append(checks, chaos.CheckMetrics(wantM, gotM)...)
	if len(rows) != int(st.Sent) {
		t.Errorf("archive holds %d rows for %d distinct events", len(rows), st.Sent)
	}
	for _, ch := range checks {
		if !ch.OK {
			t.Errorf("%s: expected %s, got %s; %v", ch.Name, ch.Expected, ch.Got, ch.Examples)
		}
	}
}

// scrapeSum sums a counter's series on addr's /metrics per application.
func scrapeSum(t *testing.T, addr, name string) map[string]float64 {
	t.Helper()
	m, err := proc.ScrapeURL(context.Background(), "http://"+addr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, app := range chaos.Apps {
		out[app] = m.Sum(name, "app", app)
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
