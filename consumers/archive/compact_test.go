package archive

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickstream-go/clickstream/consumers"
)

// smallFiles archives recs the way the Lambda handler does: one flush per
// invocation of n records, so every hour gets many small objects.
func smallFiles(t *testing.T, e *itEnv, prefix string, recs []consumers.Record, n int) {
	t.Helper()
	ctx := context.Background()
	a, err := New(e.c.S3, Config{Bucket: e.bucket, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(recs); i += n {
		sp, err := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: &memState{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Process(ctx, consumers.Batch{ShardID: testShard, Records: recs[i:min(i+n, len(recs))], Now: epoch}); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		sp.Close()
	}
}

// allRows is every archived row, sorted by shard and position, as JSON.
func allRows(t *testing.T, a archived) (string, int) {
	var rows []Row
	for _, r := range a.objects {
		rows = append(rows, r...)
	}
	slices.SortFunc(rows, compareRows)
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), len(rows)
}

// hoursOf lists the hours holding objects, the most objects first (ties by
// time), so hours[:1] always has small files to compact; map order made it
// random, and an hour of one file gave a test nothing to interrupt.
func hoursOf(a archived, prefix string) []time.Time {
	var hours []time.Time
	files := map[time.Time]int{}
	for k := range a.objects {
		info, _ := ParseObjectKey(prefix, k)
		h, _ := time.Parse("2006-01-02 15", info.Date+" "+info.Hour)
		if files[h]++; files[h] == 1 {
			hours = append(hours, h)
		}
	}
	slices.SortFunc(hours, func(x, y time.Time) int {
		if d := files[y] - files[x]; d != 0 {
			return d
		}
		return x.Compare(y)
	})
	return hours
}

func compactAll(t *testing.T, api CompactAPI, e *itEnv, prefix string, hours []time.Time) (CompactResult, error) {
	var total CompactResult
	for _, h := range hours {
		res, err := Compact(context.Background(), api, CompactOptions{Bucket: e.bucket, Prefix: prefix, Hour: h,
			Now: func() time.Time { return epoch.Add(48 * time.Hour) }})
		total.Written += res.Written
		total.Merged += res.Merged
		total.Resumed += res.Resumed
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func TestCompact_MergesAnHoursSmallFilesKeepingEveryRowOnce(t *testing.T) {
	e := newITEnv(t, 0)
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(500, 11), 5)
	smallFiles(t, e, "lake", recs, 40)
	before := readArchive(t, ctx, e.c, e.bucket, "lake")
	wantRows, n := allRows(t, before)
	hours := hoursOf(before, "lake")

	res, err := compactAll(t, e.c.S3, e, "lake", hours)
	if err != nil {
		t.Fatal(err)
	}
	after := readArchive(t, ctx, e.c, e.bucket, "lake")
	if got, _ := allRows(t, after); got != wantRows {
		t.Fatalf("rows changed by compaction (%d rows before)", n)
	}
	if res.Merged < len(before.objects)/2 || len(after.objects) >= len(before.objects) {
		t.Fatalf("merged %d of %d objects, %d left", res.Merged, len(before.objects), len(after.objects))
	}
	parts := map[string]int{}
	for k := range after.objects {
		info, err := ParseObjectKey("lake", k)
		if err != nil {
			t.Fatalf("compacted key %s: %v", k, err)
		}
		parts[info.PartitionPath()]++
	}
	for p, c := range parts {
		if c != 1 {
			t.Errorf("partition %s has %d objects after compaction, want 1", p, c)
		}
	}
	t.Logf("%d rows: %d objects → %d", n, len(before.objects), len(after.objects))

	// Idempotent: a second run finds nothing to do.
	res, err = compactAll(t, e.c.S3, e, "lake", hours)
	if err != nil || res.Written != 0 || res.Merged != 0 {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if again := readArchive(t, ctx, e.c, e.bucket, "lake"); !slices.Equal(sortedKeys(again.objects), sortedKeys(after.objects)) {
		t.Fatal("second run changed the objects")
	}

	// Hours still being written are refused.
	if _, err := Compact(ctx, e.c.S3, CompactOptions{Bucket: e.bucket, Prefix: "lake", Hour: time.Now()}); !errors.Is(err, ErrHourTooRecent) {
		t.Fatalf("current hour: err %v", err)
	}
}

// failDeletes fails DeleteObjects: a compaction "crashes" after writing
// its output and before deleting the inputs.
type failDeletes struct{ CompactAPI }

func (failDeletes) DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	return nil, errors.New("injected crash before deleting the inputs")
}

func TestCompact_InterruptedRunIsFinishedByTheNext(t *testing.T) {
	e := newITEnv(t, 0)
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(300, 12), 5)
	smallFiles(t, e, "", recs, 30)
	before := readArchive(t, ctx, e.c, e.bucket, "")
	wantRows, wantN := allRows(t, before)
	hours := hoursOf(before, "")

	if _, err := compactAll(t, failDeletes{e.c.S3}, e, "", hours[:1]); err == nil {
		t.Fatal("the injected failure did not surface")
	}
	// The crashed run left its output beside its inputs: rows seen twice
	// until the next run.
	if _, n := allRows(t, readArchive(t, ctx, e.c, e.bucket, "")); n <= wantN {
		t.Fatalf("%d rows after the crash, want more than %d (output and inputs both present)", n, wantN)
	}
	for i := 0; ; i++ {
		res, err := compactAll(t, e.c.S3, e, "", hours)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && res.Resumed != 1 {
			t.Fatalf("first run after the crash resumed %d compactions, want 1", res.Resumed)
		}
		if res.Written == 0 && res.Resumed == 0 {
			break
		}
		if i > 5 {
			t.Fatal("compaction does not converge")
		}
	}
	if got, _ := allRows(t, readArchive(t, ctx, e.c, e.bucket, "")); got != wantRows {
		t.Fatal("rows differ after the interrupted compaction was finished")
	}
	if keys, err := e.c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &e.bucket}); err != nil {
		t.Fatal(err)
	} else {
		for _, o := range keys.Contents {
			if strings.HasPrefix(*o.Key, "compaction/") {
				t.Fatalf("manifest %s left behind", *o.Key)
			}
		}
	}
}
