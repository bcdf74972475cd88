package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/clickstream-go/clickstream/internal/awsx"
)

// Prices are the AWS list prices (us-east-1, USD) the cost estimate uses.
// They are the published prices as of 2025 and were not re-checked from the
// offline machine that runs the benchmark: check them before quoting.
var Prices = struct {
	Date                                              string
	KinesisShardHour, KinesisPerMillionPayload        float64
	DynamoDBPerMillionWrites, DynamoDBPerMillionReads float64
	S3PerThousandPuts, S3PerThousandGets              float64
}{
	Date:             "AWS list prices, us-east-1, as published in 2025",
	KinesisShardHour: 0.015, KinesisPerMillionPayload: 0.014,
	DynamoDBPerMillionWrites: 0.625, DynamoDBPerMillionReads: 0.125,
	S3PerThousandPuts: 0.005, S3PerThousandGets: 0.0004,
}

// CostPerMillion estimates the AWS bill for one million events at the run's
// request mix: Kinesis shard-hours at the measured rate plus PUT payload
// units, DynamoDB write/read request units (one per call: items here are
// under 1 KB except large user vectors, so this is a lower bound), S3
// requests. Storage, transfer and the read API's traffic are not included.
func (r *Result) CostPerMillion() (total float64, parts map[string]float64) {
	if r.OnStream == 0 {
		return 0, nil
	}
	per := 1e6 / float64(r.OnStream)
	c := r.Calls
	parts = map[string]float64{
		"Kinesis shard-hours":  c.ShardHoursPerMEv * Prices.KinesisShardHour,
		"Kinesis PUT payload":  c.PutPayloadUnits * per / 1e6 * Prices.KinesisPerMillionPayload,
		"DynamoDB writes":      c.DynamoDBWrites * per / 1e6 * Prices.DynamoDBPerMillionWrites,
		"DynamoDB reads":       c.DynamoDBReads * per / 1e6 * Prices.DynamoDBPerMillionReads,
		"S3 PUT/LIST requests": c.S3Puts * per / 1e3 * Prices.S3PerThousandPuts,
		"S3 GET/HEAD requests": c.S3Gets * per / 1e3 * Prices.S3PerThousandGets,
	}
	for _, v := range parts {
		total += v
	}
	return total, parts
}

func ms(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func (p Percentiles) String() string {
	if p.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", ms(p.P50), ms(p.P99), ms(p.Max), p.N)
}

func (r *Result) ran(app string) bool { return slices.Contains(r.Apps, app) }

// Markdown renders the result as a report section.
func (r *Result) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("### %s of %s (%s)\n\n", cmp.Or(r.Name, "Run"), r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Label)
	w("Machine: %s. Stream: %d shards. Load: %s for %s through the collector. Consumers: %s.\n\n", r.Machine, r.Shards, rateString(r.TargetRate), r.Duration, strings.Join(r.Apps, ", "))
	var polls []string
	for _, app := range r.Apps {
		if d, ok := r.PollIntervals[app]; ok {
			polls = append(polls, fmt.Sprintf("%s %s", app, d))
		}
	}
	switch {
	case r.ReadMode == "efo":
		w("Read mode: enhanced fan-out (each consumer pushed its own 2 MiB/s per shard).\n\n")
	case len(polls) > 0:
		w("Read mode: polling. GetRecords poll interval per consumer (together within a shard's 5 calls/s): %s.\n\n", strings.Join(polls, ", "))
	}
	w("| figure | value |\n|---|---|\n")
	w("| events generated / accepted by the collector / acknowledged by Kinesis | %d / %d / %d |\n", r.Generated, r.Accepted, r.OnStream)
	w("| sustained events/s end to end (on the stream, load phase) | **%.0f** |\n", r.EventsPerSec)
	if r.KinesisRecords > 0 {
		w("| Kinesis records (KPL aggregates) / events per record | %d / %.1f |\n", r.KinesisRecords, float64(r.OnStream)/float64(r.KinesisRecords))
	}
	for _, app := range r.Apps {
		w("| %s: processed, kept up, lag mid → end of load, caught up after load | %d, %v, %.0f → %.0f events, %s |\n",
			app, r.Processed[app], r.KeptUp[app], r.LagMid[app], r.LagEnd[app], ms(r.CaughtUpAfter[app]))
	}
	if r.ran("archive") {
		w("| archive: rows written, all written after load | %d, %s |\n", r.Archived, ms(r.CaughtUpAfter["archive-written"]))
	}
	if r.ran("vectors") {
		w("| put → vector visible (probe clicks, read API) | %s |\n", r.VectorLatency)
	}
	for _, app := range r.Apps {
		w("| put → processed by %s (count crossing) | %s |\n", app, r.ProcessedLatency[app])
	}
	if r.ran("archive") {
		w("| put → archived object (count crossing) | %s |\n", r.ArchiveLatency)
	}
	if r.ran("metrics") {
		w("| window end → metric readable (published) | %s |\n", r.WindowLatency)
	}
	w("\n| component | CPU s | CPU s per million events | peak RSS | DynamoDB writes per million events | S3 PUTs per million events |\n|---|---|---|---|---|---|\n")
	for _, c := range r.Components {
		w("| %s | %.1f | %.1f | %.0f MiB | %.0f | %.0f |\n", c.Name, c.CPUSeconds, c.CPUSecondsPerMillion, float64(c.PeakRSS)/(1<<20), c.DynamoDBWrites, c.S3Puts)
	}
	per := 0.0
	if r.OnStream > 0 {
		per = 1e6 / float64(r.OnStream)
	}
	c := r.Calls
	w("\n| AWS requests per million events | count |\n|---|---|\n")
	w("| DynamoDB writes (UpdateItem, PutItem, …; all consumers incl. leases/checkpoints) | %.0f |\n", c.DynamoDBWrites*per)
	w("| DynamoDB reads (API, consumer state) | %.0f |\n", c.DynamoDBReads*per)
	w("| S3 PUT-class (PutObject, multipart, List) | %.0f |\n", c.S3Puts*per)
	w("| Kinesis PutRecords calls / GetRecords calls | %.0f / %.0f |\n", c.KinesisPutCalls*per, c.KinesisGetCalls*per)
	w("| Kinesis PUT payload units (25 KB) | %.0f |\n", c.PutPayloadUnits*per)
	total, parts := r.CostPerMillion()
	w("\nEstimated AWS cost per million events: **$%.4f** (", total)
	first := true
	for _, k := range []string{"Kinesis shard-hours", "Kinesis PUT payload", "DynamoDB writes", "DynamoDB reads", "S3 PUT/LIST requests", "S3 GET/HEAD requests"} {
		if !first {
			w(", ")
		}
		first = false
		w("%s $%.4f", k, parts[k])
	}
	w("). Prices: %s — Kinesis $%.3f/shard-hour and $%.3f per million PUT payload units, DynamoDB on-demand $%.3f per million writes and $%.3f per million reads, S3 $%.4f per 1,000 PUT/LIST and $%.4f per 1,000 GET. Shard-hours assume the stream runs at the measured rate; storage and transfer are not included.\n",
		Prices.Date, Prices.KinesisShardHour, Prices.KinesisPerMillionPayload, Prices.DynamoDBPerMillionWrites, Prices.DynamoDBPerMillionReads, Prices.S3PerThousandPuts, Prices.S3PerThousandGets)
	if p := r.Profile; p != nil {
		w("\nWhere the CPU goes in the busiest component, **%s** (%.1f s of CPU in a %s profile taken a third into the load; `go tool pprof %s`):\n\n",
			p.Component, p.CPU.Seconds(), p.Duration.Round(time.Second), p.Path)
		w("| function | flat | cum |\n|---|---|---|\n")
		for _, f := range p.Top {
			w("| `%s` | %.1f%% | %.1f%% |\n", f.Name, 100*f.Flat, 100*f.Cum)
		}
		names := make([]string, 0, len(r.ProfilePaths))
		for name := range r.ProfilePaths {
			names = append(names, name)
		}
		sort.Strings(names)
		w("\nProfiles of every component: %s.\n", strings.Join(names, ", "))
	}
	if len(r.Errors) > 0 {
		w("\nErrors during the run:\n")
		for _, e := range r.Errors {
			w("- %s\n", e)
		}
	}
	return b.String()
}

// A ReportSection is one benchmark's part of a markdown report: its runs
// sit between HTML comment markers named after Key, so several benchmarks
// share one file (docs/BENCHMARKS.md) and each rewrites only its own part.
type ReportSection struct {
	Key   string // marker name, e.g. "bench-e2e"
	Title string // heading written when the file has no such part yet
	About string // the sentence under it
}

// E2EReport is `clickstream-lab bench`'s part; ArchiveReport is
// `clickstream-lab bench-archive`'s.
var (
	E2EReport = ReportSection{Key: "bench-e2e", Title: "End-to-end (`make bench-e2e`)",
		About: "Written by `clickstream-lab bench`; the latest run and the one before it."}
	ArchiveReport = ReportSection{Key: "bench-archive", Title: "Archive efficiency (`make bench-archive`)",
		About: "Written by `clickstream-lab bench-archive`; the latest runs and the ones before them."}
)

func (r ReportSection) marks() (latest, previous, end string) {
	return "<!-- " + r.Key + ":latest -->", "<!-- " + r.Key + ":previous -->", "<!-- " + r.Key + ":end -->"
}

// UpdateReport is E2EReport.Update.
func UpdateReport(path, section string) error { return E2EReport.Update(path, section) }

// AppendReport is E2EReport.Append.
func AppendReport(path, section string) error { return E2EReport.Append(path, section) }

// Update writes section as the latest run into the markdown file at path,
// moving the run that was latest to "previous" (one previous run is kept,
// for comparison). Text outside the markers is left alone; a missing file
// or missing markers get a fresh skeleton at the end of the file.
func (r ReportSection) Update(path, section string) error {
	latestMark, previousMark, endMark := r.marks()
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	li, pi, ei := strings.Index(s, latestMark), strings.Index(s, previousMark), strings.Index(s, endMark)
	var head, prevLatest, tailText string
	if li >= 0 && pi > li && ei > pi {
		head = s[:li]
		prevLatest = strings.TrimSpace(strings.TrimPrefix(s[li+len(latestMark):pi], "\n## Latest run\n"))
		prevLatest = strings.TrimSpace(strings.TrimPrefix(prevLatest, "## Latest run"))
		tailText = s[ei+len(endMark):]
	} else {
		head = s
		if head == "" {
			head = "# Benchmarks\n\n"
		}
		head = strings.TrimRight(head, "\n") + "\n\n## " + r.Title + "\n\n" + r.About + "\n\n"
	}
	var out strings.Builder
	out.WriteString(head)
	out.WriteString(latestMark + "\n## Latest run\n\n" + strings.TrimSpace(section) + "\n\n")
	out.WriteString(previousMark + "\n## Previous run\n\n")
	if prevLatest != "" {
		out.WriteString(prevLatest + "\n\n")
	} else {
		out.WriteString("(none yet)\n\n")
	}
	out.WriteString(endMark)
	out.WriteString(tailText)
	if !strings.HasSuffix(out.String(), "\n") {
		out.WriteString("\n")
	}
	return os.WriteFile(path, []byte(out.String()), 0o644)
}

// Append adds section to the latest run of the markdown file at path
// (after what Update wrote there), for a benchmark of several runs, e.g. a
// throughput run and a latency run. Without a latest run it is Update.
func (r ReportSection) Append(path, section string) error {
	latestMark, previousMark, _ := r.marks()
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	li, pi := strings.Index(s, latestMark), strings.Index(s, previousMark)
	if li < 0 || pi < li {
		return r.Update(path, section)
	}
	out := strings.TrimRight(s[:pi], "\n") + "\n\n" + strings.TrimSpace(section) + "\n\n" + s[pi:]
	return os.WriteFile(path, []byte(out), 0o644)
}

// deletePrefix deletes every object under prefix.
func deletePrefix(ctx context.Context, c *awsx.Clients, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, err
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := c.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return n, err
		}
		n += len(ids)
	}
	return n, nil
}
