package archive

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// benchEvents is a realistic mix without bad records, ~300 bytes each.
func benchEvents(n int) [][]byte {
	out := make([][]byte, 0, n)
	for seed := uint64(1); len(out) < n; seed++ {
		for _, e := range genEvents(1000, seed) {
			if _, err := event.Decode(e); err == nil && len(out) < n {
				out = append(out, e)
			}
		}
	}
	return out
}

func rowsOf(recs []consumers.Record) []Row {
	rows := make([]Row, 0, len(recs))
	for i := range recs {
		if recs[i].Err == nil {
			rows = append(rows, RowOf(&recs[i]))
		}
	}
	return rows
}

func rawBytes(events [][]byte) int {
	n := 0
	for _, e := range events {
		n += len(e)
	}
	return n
}

// BenchmarkEncode measures Parquet encoding of one 100,000-row file (the
// flush path minus the upload) per codec: rows/s per core and bytes/event
// on disk.
func BenchmarkEncode(b *testing.B) {
	events := benchEvents(100_000)
	for _, codec := range []string{CompressionZstd, CompressionSnappy, CompressionNone} {
		b.Run(codec, func(b *testing.B) { benchEncode(b, events, codec) })
	}
}

// benchEncode encodes events as one file with codec, b.N times, and
// reports events per second and per CPU-second and the file's size.
func benchEncode(b *testing.B, events [][]byte, codec string) {
	rows := rowsOf(recordsOf(testShard, events, 1))
	cfg, _ := Config{Compression: codec}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var size int
	b.SetBytes(int64(rawBytes(events)))
	cpu := cpuTime()
	for b.Loop() {
		out, err := enc.encodeBytes(rows, rawBytes(events)/8)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	reportRates(b, len(rows), cpu)
	b.ReportMetric(float64(size)/float64(len(rows)), "file-bytes/event")
	b.ReportMetric(float64(rawBytes(events))/float64(len(rows)), "json-bytes/event")
}

// BenchmarkDecodeAndArchive is the archive's whole CPU path per event:
// decode (consumers.RecordDecoder, as the runtime does, into the maps of
// the batch before), buffer (RowOf, partitioning) and flush (Parquet zstd
// encode into an in-memory store), in 500-record batches over a realistic
// mix of types and hours.
func BenchmarkDecodeAndArchive(b *testing.B) {
	benchDecodeAndArchive(b, benchEvents(100_000))
}

// benchDecodeAndArchive runs events through the archive's whole CPU path
// b.N times and reports events per second and per CPU-second.
func benchDecodeAndArchive(b *testing.B, events [][]byte) {
	// Sequence numbers arrive as strings from Kinesis: made here, once.
	seqs := make([]string, len(events))
	for i := range seqs {
		seqs[i] = seqOf(i + 1)
	}
	ctx := context.Background()
	a, _ := testArchive(b, Config{})
	dec, err := consumers.NewRecordDecoder(testShard, consumers.HashKeyRange{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(rawBytes(events)))
	cpu := cpuTime()
	for b.Loop() {
		sp, err := a.OpenShard(ctx, consumers.Shard{ID: testShard})
		if err != nil {
			b.Fatal(err)
		}
		_, releases := sp.(consumers.EventMapsReleaser)
		// As the runtime does: lists for a processor that reads them.
		_, lists := sp.(consumers.EventListsReader)
		if lists {
			dec.UseLists()
		}
		batch := make([]consumers.Record, 0, 500)
		for i, data := range events {
			batch = dec.Append(batch, consumers.KinesisRecord{SequenceNumber: seqs[i], ArrivalTime: epoch, Data: data})
			if len(batch) == cap(batch) || i == len(events)-1 {
				if _, err := sp.Process(ctx, consumers.Batch{Records: batch, Now: epoch}); err != nil {
					b.Fatal(err)
				}
				if lists {
					dec.ResetLists()
				} else if releases {
					dec.RecycleMaps(batch)
				}
				batch = batch[:0]
			}
		}
		if _, err := sp.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		sp.Close()
	}
	reportRates(b, len(events), cpu)
}

// BenchmarkOpenPartitions buffers 200,000 events spread over 100 open
// partitions (10 types x 10 hours, half of them a day late) without
// flushing, and reports the heap they hold per event, the estimate the
// memory budget uses, and the process's peak RSS (VmHWM; run it alone:
// go test -run '^$' -bench OpenPartitions -benchtime 1x).
func BenchmarkOpenPartitions(b *testing.B) {
	const n = 200_000
	events := benchEvents(n)
	typeRE := regexp.MustCompile(`"type":"[^"]*"`)
	for i, e := range events {
		// 10 types; the events span 5 hours, and 1 in 20 is 30 hours late.
		events[i] = typeRE.ReplaceAll(e, fmt.Appendf(nil, `"type":"t%02d"`, i%10))
	}
	ctx := context.Background()
	for b.Loop() {
		a, _ := testArchive(b, Config{MaxPartitions: 1000, MemoryBudget: 1 << 40, FlushRows: n + 1, FlushBytes: 1 << 40})
		sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rss0 := peakRSS()
		for i := 0; i < n; i += 500 {
			batch := make([]consumers.Record, 0, 500)
			for j := i; j < min(i+500, n); j++ {
				ev, err := event.Decode(events[j])
				batch = append(batch, consumers.Record{Position: consumers.Position{SequenceNumber: seqOf(j + 1)},
					ShardID: testShard, ArrivalTime: epoch, Data: events[j], Event: ev, Err: err})
			}
			if _, err := sp.Process(ctx, consumers.Batch{Records: batch, Now: epoch}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		open := len(sp.(*shardProc).parts)
		if open < 100 || open > 110 {
			b.Fatalf("%d partitions open, want about 100", open)
		}
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(float64(open), "partitions")
		b.ReportMetric(heap/n, "heap-bytes/event")
		b.ReportMetric(float64(a.buffered.Load())/n, "estimate-bytes/event")
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		if hwm := peakRSS(); hwm > 0 {
			b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(rss0)/(1<<20), "RSS-before-MiB")
		}
		// Flushing 100 partitions at once must not need much more.
		if _, err := sp.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if hwm := peakRSS(); hwm > 0 {
			b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-after-flush-MiB")
		}
		sp.Close()
	}
}

// cpuTime is the process's user+system CPU time. The machine running the
// benchmarks may be shared, so rates per CPU-second (all of the process's
// threads, GC included) are reported beside the wall-clock rate.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports events/s (wall clock) and events per CPU-second
// since cpu0 for b.N iterations of perOp events.
func reportRates(b *testing.B, perOp int, cpu0 time.Duration) {
	n := float64(perOp) * float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(n/cpu.Seconds(), "events/cpu-s")
	}
}

// peakRSS returns the process's peak resident set size (Linux), or 0.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestRowMemoryEstimate checks that the memory budget's per-row estimate
// is within a factor of two of the heap buffered rows really hold.
func TestRowMemoryEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const n = 30_000
	events := benchEvents(n)
	ctx := context.Background()
	a, _ := testArchive(t, Config{})
	sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard})
	defer sp.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i += 1000 {
		batch := make([]consumers.Record, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			ev, err := event.Decode(events[j])
			batch = append(batch, consumers.Record{Position: consumers.Position{SequenceNumber: seqOf(j + 1)},
				ShardID: testShard, ArrivalTime: epoch, Data: events[j], Event: ev, Err: err})
		}
		if _, err := sp.Process(ctx, consumers.Batch{Records: batch, Now: epoch.Add(time.Duration(i))}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The input stays live across both readings: the buffers copy the
	// raw bytes, and a dead input would be subtracted from their heap.
	runtime.KeepAlive(events)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	est := a.buffered.Load()
	t.Logf("%d buffered rows: heap %d bytes (%d/row), estimate %d (%d/row)", n, heap, heap/n, est, est/n)
	if est < heap/2 || est > heap*2 {
		t.Errorf("estimate %d is not within 2x of the heap %d", est, heap)
	}
}
