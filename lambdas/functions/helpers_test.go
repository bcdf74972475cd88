package functions_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
)

func readEvent(t *testing.T, name string) events.KinesisEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".event.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// listKeys lists the keys under prefix, sorted.
func listKeys(t *testing.T, c *awsx.Clients, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

// archiveRows reads every archive object under prefix and returns the
// object keys (relative to prefix) and all rows in shard order.
func archiveRows(t *testing.T, c *awsx.Clients, bucket, prefix string) ([]string, []archive.Row) {
	t.Helper()
	var rel []string
	var rows []archive.Row
	for _, k := range listKeys(t, c, bucket, prefix+"events/") {
		rel = append(rel, strings.TrimPrefix(k, prefix))
		out, err := c.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := parquet.NewGenericReader[archive.Row](bytes.NewReader(b))
		buf := make([]archive.Row, r.NumRows())
		n, err := r.Read(buf)
		if err != nil && err != io.EOF {
			t.Fatalf("read %s: %v", k, err)
		}
		rows = append(rows, buf[:n]...)
		r.Close()
	}
	slices.SortFunc(rows, func(a, b archive.Row) int {
		return cmp.Or(strings.Compare(a.ShardID, b.ShardID), cmp.Compare(len(a.SequenceNumber), len(b.SequenceNumber)),
			strings.Compare(a.SequenceNumber, b.SequenceNumber), cmp.Compare(a.SubSequenceNumber, b.SubSequenceNumber))
	})
	return rel, rows
}

// vectorsOf reads the users' vectors decayed to at.
func vectorsOf(t *testing.T, c *awsx.Clients, table string, users []string, at time.Time) map[string]*vectors.Vector {
	t.Helper()
	out := map[string]*vectors.Vector{}
	for _, u := range users {
		v, err := vectors.Get(context.Background(), c.DynamoDB, table, u, at, 100)
		if err == vectors.ErrNotFound {
			continue
		}
		if err != nil {
			t.Fatalf("get vector %s: %v", u, err)
		}
		out[u] = v
	}
	return out
}

// metricsOf queries both built-in metrics over [from, to), open windows
// included.
func metricsOf(t *testing.T, c *awsx.Clients, table string, from, to time.Time) map[string]*metrics.Result {
	t.Helper()
	r := metrics.NewReader(metrics.NewDynamoStore(c.DynamoDB, table), metrics.ReaderConfig{Clock: func() time.Time { return to }})
	out := map[string]*metrics.Result{}
	for _, m := range []string{"access", "engagement"} {
		res, err := r.Query(context.Background(), metrics.Query{Metric: m, From: from, To: to, IncludeOpen: true})
		if err != nil {
			t.Fatalf("query %s: %v", m, err)
		}
		out[m] = res
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkGolden compares got with testdata/golden/name.json (-update rewrites it).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update after checking):\n%s", path, got)
	}
}

func clickJSON(id, user, typ string, ts time.Time, features string) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":%q,"type":%q,"ts":%q,"user_id":%q,"item_id":"a-%s","placement":"home_feed","features":%s}`,
		id, typ, ts.UTC().Format(time.RFC3339Nano), user, id, features)
}

func accessJSON(id, route, cache string, status int, ts time.Time, ms float64) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":"access","ts":%d,"host":"api-1","method":"GET","uri":"/x","route":%q,"status":%d,"cache":%q,"request_time_ms":%g,"bytes":512}`,
		id, ts.UnixMilli(), route, status, cache, ms)
}
