package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/event"
)

// duckDB returns a directory holding check.mjs next to an installed
// @duckdb/node-api (pinned by testdata/duckdb/package-lock.json; the native
// library ships inside the npm package). It is installed once into the user
// cache directory, keyed by the lock file's hash.
func duckDB(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is required for the DuckDB interop test (the local stack needs it too): %v", err)
	}
	lock, err := os.ReadFile("testdata/duckdb/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "clickstream", "duckdb-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api", "package.json")); err != nil {
		// Install beside, then rename: a killed install never looks done.
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "duckdb-install-")
		if err != nil {
			if err = os.MkdirAll(filepath.Dir(dir), 0o755); err == nil {
				tmp, err = os.MkdirTemp(filepath.Dir(dir), "duckdb-install-")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		defer os.RemoveAll(tmp)
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join("testdata/duckdb", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci @duckdb/node-api: %v\n%s", err, out)
		}
		if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
			if _, statErr := os.Stat(dir); statErr != nil {
				t.Fatalf("install DuckDB: %v", err)
			}
		}
	}
	script, err := os.ReadFile("testdata/duckdb/check.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// duckResult is what testdata/duckdb/check.mjs prints.
type duckResult struct {
	Version string `json:"version"`
	Columns []struct {
		Name string `json:"column_name"`
		Type string `json:"column_type"`
	} `json:"columns"`
	Totals struct {
		Rows string `json:"rows"`
		IDs  string `json:"ids"`
	} `json:"totals"`
	// Rows hold strings (VARCHAR, BIGINT), json.Numbers (INTEGER, DOUBLE)
	// and nils (NULL).
	Rows []map[string]any `json:"rows"`
}

// checkWithDuckDB copies the archive to a local directory (DuckDB's S3
// support is an extension downloaded at run time, not available offline)
// and reads it with DuckDB's own Parquet reader and Hive partitioning, as an
// analyst would: column types, partition values and every value must match.
func checkWithDuckDB(t *testing.T, ctx context.Context, e *itEnv, prefix string, a archived, events [][]byte) {
	dir := duckDB(t)
	data := t.TempDir()
	for key := range a.objects {
		rel := strings.TrimPrefix(key, normPrefix(prefix))
		p := filepath.Join(data, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, getObject(t, ctx, e.c, e.bucket, key), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, "node", "check.mjs", data)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("DuckDB: %v", err)
	}
	var res duckResult
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("DuckDB output: %v\n%.500s", err, out)
	}
	t.Logf("DuckDB %s read %s rows from %d files", res.Version, res.Totals.Rows, len(a.objects))

	wantTypes := map[string]string{
		"ts": "TIMESTAMP WITH TIME ZONE", "arrival_ts": "TIMESTAMP WITH TIME ZONE", "received_at": "TIMESTAMP WITH TIME ZONE",
		"features": "MAP(VARCHAR, DOUBLE)", "attrs": "MAP(VARCHAR, VARCHAR)",
		"id": "VARCHAR", "type": "VARCHAR", "extra": "VARCHAR", "sequence_number": "VARCHAR",
		"position": "BIGINT", "status": "INTEGER", "request_time_ms": "DOUBLE", "bytes": "BIGINT", "sub_sequence_number": "BIGINT",
		"dt": "DATE", "hour": "VARCHAR", // Hive partition columns
	}
	got := map[string]string{}
	for _, c := range res.Columns {
		got[c.Name] = c.Type
	}
	for name, want := range wantTypes {
		if got[name] != want {
			t.Errorf("DuckDB column %s: %q, want %q", name, got[name], want)
		}
	}

	good := map[string]event.Event{}
	for _, data := range events {
		if ev, err := event.Decode(data); err == nil {
			good[ev.ID] = ev
		}
	}
	if res.Totals.Rows != strconv.Itoa(len(good)) || res.Totals.IDs != strconv.Itoa(len(good)) {
		t.Errorf("DuckDB counts %s rows, %s distinct ids; want %d", res.Totals.Rows, res.Totals.IDs, len(good))
	}
	str := func(v any) string {
		switch v := v.(type) {
		case nil:
			return "<null>"
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return fmt.Sprint(v)
	}
	bad := 0
	for _, row := range res.Rows {
		id := str(row["id"])
		ev, ok := good[id]
		if !ok {
			t.Errorf("DuckDB row with unknown id %s", id)
			continue
		}
		p := PartitionOf(ev.Type, ev.TS)
		checks := []struct{ name, got, want string }{
			{"type", str(row["type"]), ev.Type},
			{"dt", str(row["dt"]), p.Date()},
			{"hour", str(row["hour"]), p.HourString()},
			{"ts", str(row["ts_ms"]), strconv.FormatInt(ev.TS.UnixMilli(), 10)},
			{"user_id", str(row["user_id"]), nullIfEmpty(ev.UserID)},
			{"placement", str(row["placement"]), nullIfEmpty(ev.Placement)},
			{"cache", str(row["cache"]), nullIfEmpty(ev.Cache)},
			{"features", normJSON(str(row["features"])), normJSON(jsonOrNull(ev.Features))},
			{"attrs", normJSON(str(row["attrs"])), normJSON(jsonOrNull(ev.Attrs))},
		}
		if ev.Status != 0 {
			checks = append(checks, struct{ name, got, want string }{"status", str(row["status"]), strconv.Itoa(ev.Status)})
		}
		if !ev.ReceivedAt.IsZero() {
			checks = append(checks, struct{ name, got, want string }{"received_at", str(row["received_ms"]), strconv.FormatInt(ev.ReceivedAt.UnixMilli(), 10)})
		}
		if str(row["arrival_ms"]) == "<null>" {
			t.Errorf("event %s: arrival_ts is null", id)
		}
		for _, c := range checks {
			if c.got != c.want {
				bad++
				if bad <= 10 {
					t.Errorf("event %s: DuckDB %s = %s, want %s", id, c.name, c.got, c.want)
				}
			}
		}
	}
}

func nullIfEmpty(s string) string {
	if s == "" {
		return "<null>"
	}
	return s
}

func jsonOrNull[M ~map[string]V, V any](m M) string {
	if len(m) == 0 {
		return "<null>"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// normJSON re-encodes a JSON object with sorted keys and Go's number
// formatting, so DuckDB's and Go's renderings compare.
func normJSON(s string) string {
	if s == "<null>" {
		return s
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return "invalid JSON: " + s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// testRegistry is a private Prometheus registry with a reader.
type testRegistry struct{ *prometheus.Registry }

func newTestRegistry() testRegistry { return testRegistry{prometheus.NewRegistry()} }

// value returns the sum of a metric family's samples (counters and gauges).
func (r testRegistry) value(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
