package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// sampleRecords returns n records with a mix of repeated and new partition
// keys, some explicit hash keys, empty and binary data.
func sampleRecords(rng *rand.Rand, n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		data := make([]byte, rng.IntN(400))
		for j := range data {
			data[j] = byte(rng.IntN(256))
		}
		rs[i] = Record{PartitionKey: fmt.Sprintf("user-%d", rng.IntN(n/3+1)), Data: data}
		if rng.IntN(4) == 0 {
			rs[i].ExplicitHashKey = fmt.Sprintf("%d", rng.Uint64())
		}
	}
	return rs
}

func aggregate(rs []Record) []byte {
	var a Aggregator
	for _, r := range rs {
		a.Add(r)
	}
	data, _, _ := a.Build()
	return data
}

func equalRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].PartitionKey != want[i].PartitionKey || got[i].ExplicitHashKey != want[i].ExplicitHashKey || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("record %d: got {%q %q %x}, want {%q %q %x}", i,
				got[i].PartitionKey, got[i].ExplicitHashKey, got[i].Data,
				want[i].PartitionKey, want[i].ExplicitHashKey, want[i].Data)
		}
	}
}

func TestAggregator_RoundTripPreservesRecordsInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 17, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := sampleRecords(rng, n)
			var a Aggregator
			for _, r := range want {
				a.Add(r)
			}
			if a.Len() != n {
				t.Fatalf("Len = %d, want %d", a.Len(), n)
			}
			data, pk, ehk := a.Build()
			if pk != want[0].PartitionKey || ehk != want[0].ExplicitHashKey {
				t.Errorf("Build keys = %q, %q; want the first record's %q, %q", pk, ehk, want[0].PartitionKey, want[0].ExplicitHashKey)
			}
			if !IsAggregated(data) {
				t.Fatal("IsAggregated(Build()) = false")
			}
			got, err := Deaggregate(data, "outer")
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, want)
		})
	}
}

func TestAggregator_SizeIsExactAtEveryStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := sampleRecords(rng, 300)
	// Long data and many keys push varints across their 1→2 and 2→3 byte boundaries.
	recs = append(recs, Record{PartitionKey: strings.Repeat("k", 256), Data: make([]byte, 20000)})
	for i := range 200 {
		recs = append(recs, Record{PartitionKey: fmt.Sprint("key-", i), ExplicitHashKey: fmt.Sprint(i), Data: make([]byte, 127+i%3)})
	}
	var a Aggregator
	if a.Size() != Overhead {
		t.Fatalf("empty Size = %d, want %d", a.Size(), Overhead)
	}
	for i, r := range recs {
		predicted := a.SizeWith(r)
		a.Add(r)
		if a.Size() != predicted {
			t.Fatalf("record %d: Size after Add = %d, SizeWith predicted %d", i, a.Size(), predicted)
		}
	}
	size := a.Size()
	data, _, _ := a.Build()
	if len(data) != size {
		t.Fatalf("len(Build()) = %d, Size() said %d", len(data), size)
	}
}

func TestAggregator_BuildResetsForReuse(t *testing.T) {
	var a Aggregator
	a.Add(Record{PartitionKey: "a", ExplicitHashKey: "1", Data: []byte("x")})
	first, _, _ := a.Build()
	if a.Len() != 0 || a.Size() != Overhead || len(a.PartitionKeys()) != 0 {
		t.Fatalf("after Build: Len %d Size %d keys %v; want empty", a.Len(), a.Size(), a.PartitionKeys())
	}
	a.Add(Record{PartitionKey: "b", Data: []byte("y")})
	second, pk, ehk := a.Build()
	if pk != "b" || ehk != "" {
		t.Fatalf("second Build keys = %q %q, want b and none", pk, ehk)
	}
	got, err := Deaggregate(second, "")
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, []Record{{PartitionKey: "b", Data: []byte("y")}})
	// The first aggregate must not share memory with the reused buffers.
	got, err = Deaggregate(first, "")
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, []Record{{PartitionKey: "a", ExplicitHashKey: "1", Data: []byte("x")}})
}

func TestAggregator_EmptyBuildReturnsNil(t *testing.T) {
	var a Aggregator
	if data, pk, ehk := a.Build(); data != nil || pk != "" || ehk != "" {
		t.Fatalf("Build() on empty = %x %q %q, want nil", data, pk, ehk)
	}
}

func TestAggregator_PartitionKeysAreDistinctInFirstSeenOrder(t *testing.T) {
	var a Aggregator
	for _, k := range []string{"b", "a", "b", "c", "a"} {
		a.Add(Record{PartitionKey: k})
	}
	if got := strings.Join(a.PartitionKeys(), ","); got != "b,a,c" {
		t.Fatalf("PartitionKeys = %s, want b,a,c", got)
	}
}

func TestDeaggregate_PlainRecordIsReturnedUnchanged(t *testing.T) {
	for _, data := range [][]byte{
		nil,
		[]byte(`{"type":"click"}`),
		Magic[:],                              // prefix alone is too short to be an aggregate
		append(Magic[:], make([]byte, 15)...), // still one byte short
	} {
		got, err := Deaggregate(data, "pk")
		if err != nil {
			t.Fatalf("Deaggregate(%x): %v", data, err)
		}
		equalRecords(t, got, []Record{{PartitionKey: "pk", Data: data}})
	}
}

// frame wraps a protobuf message in magic and checksum.
func frame(msg []byte) []byte {
	sum := md5.Sum(msg)
	return append(append(append([]byte(nil), Magic[:]...), msg...), sum[:]...)
}

func TestDeaggregate_CorruptAggregatesReturnErrCorrupt(t *testing.T) {
	valid := aggregate([]Record{{PartitionKey: "a", Data: []byte("hello")}, {PartitionKey: "b", Data: []byte("world")}})
	badSum := bytes.Clone(valid)
	badSum[len(badSum)-1] ^= 1
	flipped := bytes.Clone(valid)
	flipped[len(Magic)+2] ^= 0x40 // change a byte of the protobuf: checksum no longer matches

	rec := func(fields ...[]byte) []byte {
		inner := bytes.Join(fields, nil)
		b := protowire.AppendTag(nil, fieldRecords, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	pkTable := protowire.AppendString(protowire.AppendTag(nil, fieldPartitionKeyTable, protowire.BytesType), "a")
	pkIdx := func(i uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, fieldPartitionKeyIndex, protowire.VarintType), i)
	}
	ehkIdx := func(i uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, fieldExplicitHashKeyIndex, protowire.VarintType), i)
	}
	data := protowire.AppendBytes(protowire.AppendTag(nil, fieldData, protowire.BytesType), []byte("d"))

	cases := map[string][]byte{
		"bad MD5":                    badSum,
		"flipped protobuf byte":      flipped,
		"truncated protobuf":         frame(valid[len(Magic) : len(valid)-md5.Size-3]),
		"partition key out of range": frame(append(bytes.Clone(pkTable), rec(pkIdx(1), data)...)),
		"hash key out of range":      frame(append(bytes.Clone(pkTable), rec(pkIdx(0), ehkIdx(0), data)...)),
		"missing partition key idx":  frame(append(bytes.Clone(pkTable), rec(data)...)),
		"missing data":               frame(append(bytes.Clone(pkTable), rec(pkIdx(0))...)),
		"records field as varint":    frame(protowire.AppendVarint(protowire.AppendTag(nil, fieldRecords, protowire.VarintType), 1)),
		"data field as varint":       frame(append(bytes.Clone(pkTable), rec(pkIdx(0), protowire.AppendVarint(protowire.AppendTag(nil, fieldData, protowire.VarintType), 3))...)),
		"garbage":                    frame([]byte{0xff, 0xff, 0xff}),
	}
	for name, agg := range cases {
		t.Run(name, func(t *testing.T) {
			dst := []Record{{PartitionKey: "keep"}}
			got, err := AppendDeaggregated(dst, agg, "outer")
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if len(got) != 1 || got[0].PartitionKey != "keep" {
				t.Fatalf("dst changed on error: %v", got)
			}
		})
	}
}

func TestDeaggregate_TablesAfterRecordsAndUnknownFieldsAreAccepted(t *testing.T) {
	// Writers other than the KPL may order fields differently or add new ones.
	var msg []byte
	inner := protowire.AppendVarint(protowire.AppendTag(nil, fieldPartitionKeyIndex, protowire.VarintType), 0)
	inner = protowire.AppendBytes(protowire.AppendTag(inner, fieldData, protowire.BytesType), []byte("d"))
	inner = protowire.AppendBytes(protowire.AppendTag(inner, fieldTags, protowire.BytesType), []byte{0x0a, 0x01, 'k'})
	inner = protowire.AppendVarint(protowire.AppendTag(inner, 9, protowire.VarintType), 5)
	msg = protowire.AppendBytes(protowire.AppendTag(msg, fieldRecords, protowire.BytesType), inner)
	msg = protowire.AppendString(protowire.AppendTag(msg, fieldPartitionKeyTable, protowire.BytesType), "late")
	msg = protowire.AppendFixed32(protowire.AppendTag(msg, 15, protowire.Fixed32Type), 7)
	got, err := Deaggregate(frame(msg), "outer")
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, []Record{{PartitionKey: "late", Data: []byte("d")}})
}

func TestDeaggregate_EmptyAggregateHasNoRecords(t *testing.T) {
	got, err := Deaggregate(frame(nil), "outer")
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want no records, nil", got, err)
	}
}

func FuzzDeaggregate(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	f.Add(aggregate(sampleRecords(rng, 5)))
	f.Add(aggregate([]Record{{PartitionKey: "a", ExplicitHashKey: "1", Data: nil}}))
	f.Add(frame(nil))
	f.Add([]byte("plain"))
	f.Add(frame([]byte{0x1a, 0x02, 0x08, 0x05}))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Deaggregate(data, "pk")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !IsAggregated(data) {
			if len(recs) != 1 || !bytes.Equal(recs[0].Data, data) {
				t.Fatalf("plain record not returned unchanged")
			}
			return
		}
		// Whatever decoded must survive a round trip through the Aggregator.
		again, err := Deaggregate(aggregate(recs), "pk")
		if err != nil {
			t.Fatalf("re-aggregated records do not decode: %v", err)
		}
		if len(recs) > 0 {
			equalRecords(t, again, recs)
		}
	})
}

// benchRecords are ~350-byte events over many users, like the collector's.
func benchRecords(n int) []Record {
	rng := rand.New(rand.NewPCG(7, 8))
	rs := make([]Record, n)
	for i := range rs {
		data := fmt.Appendf(nil, `{"v":1,"id":"01JD3X%020d","type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":"u-%d","session_id":"s-9","item_id":"a-%d","app":"ios","placement":"home_feed","position":3,"features":{"cat:sports":1,"tag:soccer":0.5}}`,
			i, rng.IntN(10000), rng.IntN(5000))
		data = append(data, bytes.Repeat([]byte(" "), max(0, 350-len(data)))...)
		rs[i] = Record{PartitionKey: fmt.Sprint("u-", rng.IntN(10000)), Data: data}
	}
	return rs
}

// BenchmarkAggregator_Encode measures the producer's per-record cost of
// aggregation: size check, Add, and a share of Build (1 MiB aggregates).
func BenchmarkAggregator_Encode(b *testing.B) {
	recs := benchRecords(4096)
	var a Aggregator
	var bytesIn int64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		i++
		if a.SizeWith(r) > 1<<20-256 {
			a.Build()
		}
		a.Add(r)
		bytesIn += int64(len(r.Data))
	}
	b.SetBytes(bytesIn / int64(max(i, 1)))
}

func BenchmarkDeaggregate(b *testing.B) {
	recs := benchRecords(2900) // one ~1 MiB aggregate
	data := aggregate(recs)
	var dst []Record
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = AppendDeaggregated(dst[:0], data, "pk")
		if err != nil || len(dst) != len(recs) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// FuzzDeaggregateProtobuf frames arbitrary bytes with a valid checksum, so
// the fuzzer reaches the protobuf decoder instead of stopping at the MD5.
func FuzzDeaggregateProtobuf(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, rs := range [][]Record{sampleRecords(rng, 4), {{PartitionKey: "a", ExplicitHashKey: "5", Data: []byte("x")}}} {
		agg := aggregate(rs)
		f.Add(agg[len(Magic) : len(agg)-md5.Size])
	}
	f.Add([]byte{0x1a, 0x02, 0x08, 0x05})
	f.Fuzz(func(t *testing.T, msg []byte) {
		recs, err := Deaggregate(frame(msg), "pk")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := Deaggregate(aggregate(recs), "pk")
		if err != nil {
			t.Fatalf("re-aggregated records do not decode: %v", err)
		}
		if len(recs) > 0 {
			equalRecords(t, again, recs)
		}
	})
}
