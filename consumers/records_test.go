package consumers_test

import (
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/kpl"
)

var arrival = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// click returns a valid v1 click event whose id is id.
func click(id, user string) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":%q,"type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":%q,"item_id":"a-1","placement":"home_feed"}`, id, user)
}

// hashKeyOf is the 128-bit hash key of a partition key, as Kinesis computes it.
func hashKeyOf(pk string) *big.Int {
	sum := md5.Sum([]byte(pk))
	return new(big.Int).SetBytes(sum[:])
}

// halves: a two-shard stream's ranges.
var (
	maxKey    = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	mid       = new(big.Int).Rsh(maxKey, 1)
	lowerHalf = consumers.HashKeyRange{Start: "0", End: mid.String()}
	upperHalf = consumers.HashKeyRange{Start: new(big.Int).Add(mid, big.NewInt(1)).String(), End: maxKey.String()}
)

// keyIn returns a partition key whose hash falls in (or outside) lowerHalf.
func keyIn(lower bool, n int) string {
	for i := 0; ; i++ {
		pk := fmt.Sprintf("user-%d-%d", n, i)
		if (hashKeyOf(pk).Cmp(mid) <= 0) == lower {
			return pk
		}
	}
}

func TestRecordDecoder_PlainRecordIsOneRecordAtSubSequenceZero(t *testing.T) {
	d, err := consumers.NewRecordDecoder("shardId-0", lowerHalf)
	if err != nil {
		t.Fatal(err)
	}
	data := click("e1", "u1")
	got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "100", PartitionKey: "u1", ArrivalTime: arrival, Data: data})
	if len(got) != 1 {
		t.Fatalf("%d records, want 1", len(got))
	}
	r := got[0]
	if r.Position != (consumers.Position{SequenceNumber: "100"}) || r.ShardID != "shardId-0" || r.PartitionKey != "u1" ||
		!r.ArrivalTime.Equal(arrival) || string(r.Data) != string(data) || r.Aggregated || r.OutOfRange || r.Err != nil {
		t.Fatalf("record = %+v", r)
	}
	if r.Event.ID != "e1" || r.Event.UserID != "u1" {
		t.Fatalf("event = %+v", r.Event)
	}
}

func TestRecordDecoder_AggregateBecomesSubRecordsInOrder(t *testing.T) {
	var a kpl.Aggregator
	for i := range 5 {
		pk := keyIn(true, i)
		a.Add(kpl.Record{PartitionKey: pk, Data: click(fmt.Sprint("e", i), pk)})
	}
	data, pk, _ := a.Build()
	d, _ := consumers.NewRecordDecoder("s", lowerHalf)
	got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "7", PartitionKey: pk, ArrivalTime: arrival, Data: data})
	if len(got) != 5 {
		t.Fatalf("%d records, want 5", len(got))
	}
	for i, r := range got {
		if r.SequenceNumber != "7" || r.SubSequence != int64(i) || !r.Aggregated || r.Err != nil || r.OutOfRange {
			t.Fatalf("record %d = %+v", i, r)
		}
		if r.Event.ID != fmt.Sprint("e", i) || r.PartitionKey != keyIn(true, i) {
			t.Fatalf("record %d: id %q pk %q", i, r.Event.ID, r.PartitionKey)
		}
	}
}

func TestRecordDecoder_OutOfRangeSubRecordsAreKeptAndFlagged(t *testing.T) {
	var a kpl.Aggregator
	in, out := keyIn(true, 1), keyIn(false, 2)
	a.Add(kpl.Record{PartitionKey: in, Data: click("in", in)})
	a.Add(kpl.Record{PartitionKey: out, Data: click("out", out)})
	a.Add(kpl.Record{PartitionKey: in, ExplicitHashKey: upperHalf.Start, Data: click("ehk-out", in)})
	a.Add(kpl.Record{PartitionKey: out, ExplicitHashKey: lowerHalf.End, Data: click("ehk-in", out)})
	data, pk, _ := a.Build()
	d, _ := consumers.NewRecordDecoder("s", lowerHalf)
	got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: pk, Data: data})
	want := map[string]bool{"in": false, "out": true, "ehk-out": true, "ehk-in": false}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: out-of-range sub-records must not be dropped", len(got), len(want))
	}
	for _, r := range got {
		if r.OutOfRange != want[r.Event.ID] {
			t.Errorf("%s: OutOfRange = %v, want %v", r.Event.ID, r.OutOfRange, want[r.Event.ID])
		}
	}
	// Without a known range nothing is judged.
	d, _ = consumers.NewRecordDecoder("s", consumers.HashKeyRange{})
	for _, r := range d.Append(nil, consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: pk, Data: data}) {
		if r.OutOfRange {
			t.Errorf("%s flagged without a range", r.Event.ID)
		}
	}
}

func TestRecordDecoder_CorruptAggregateIsOneBadRecordWithTheRawBytes(t *testing.T) {
	var a kpl.Aggregator
	a.Add(kpl.Record{PartitionKey: "u", Data: click("e0", "u")})
	a.Add(kpl.Record{PartitionKey: "u", Data: click("e1", "u")})
	data, pk, _ := a.Build()
	data[10] ^= 0xFF // breaks the MD5
	d, _ := consumers.NewRecordDecoder("s", consumers.HashKeyRange{})
	got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "9", PartitionKey: pk, Data: data})
	if len(got) != 1 {
		t.Fatalf("%d records, want 1 bad record", len(got))
	}
	r := got[0]
	if !errors.Is(r.Err, kpl.ErrCorrupt) || r.Position != (consumers.Position{SequenceNumber: "9"}) || !r.Aggregated || string(r.Data) != string(data) {
		t.Fatalf("bad record = %+v", r)
	}
}

func TestRecordDecoder_InvalidEventCarriesTheDecodeError(t *testing.T) {
	d, _ := consumers.NewRecordDecoder("s", consumers.HashKeyRange{})
	for name, data := range map[string][]byte{
		"not json":      []byte("hello"),
		"missing type":  []byte(`{"v":1,"user_id":"u"}`),
		"empty payload": {},
	} {
		got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: "u", Data: data})
		if len(got) != 1 || got[0].Err == nil {
			t.Errorf("%s: %+v, want one bad record", name, got)
			continue
		}
		var ee *event.Error
		if !errors.As(got[0].Err, &ee) {
			t.Errorf("%s: err %T %v, want *event.Error", name, got[0].Err, got[0].Err)
		}
	}
}

func TestRecordDecoder_RejectsMalformedRange(t *testing.T) {
	for _, r := range []consumers.HashKeyRange{
		{Start: "x", End: "1"},
		{Start: "0", End: "340282366920938463463374607431768211456"}, // 2^128
		{Start: "0", End: ""},
	} {
		if _, err := consumers.NewRecordDecoder("s", r); err == nil {
			t.Errorf("range %+v accepted", r)
		}
	}
	if _, err := consumers.NewRecordDecoder("s", consumers.HashKeyRange{Start: "0", End: maxKey.String()}); err != nil {
		t.Errorf("full range rejected: %v", err)
	}
}

func FuzzRecordDecoder(f *testing.F) {
	var a kpl.Aggregator
	a.Add(kpl.Record{PartitionKey: "u", Data: click("e0", "u")})
	a.Add(kpl.Record{PartitionKey: "v", ExplicitHashKey: "12345", Data: []byte("x")})
	agg, _, _ := a.Build()
	f.Add(agg, "u")
	f.Add(click("e", "u"), "u")
	f.Add([]byte{0xF3, 0x89, 0x9A, 0xC2}, "")
	f.Fuzz(func(t *testing.T, data []byte, pk string) {
		d, _ := consumers.NewRecordDecoder("s", lowerHalf)
		got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "5", PartitionKey: pk, Data: data})
		if len(got) == 0 && !kpl.IsAggregated(data) {
			t.Fatal("a plain record produced no user record")
		}
		for i, r := range got {
			if r.SequenceNumber != "5" || r.SubSequence != int64(i) {
				t.Fatalf("record %d at %v", i, r.Position)
			}
		}
	})
}

func TestRecordDecoder_EventDatedFarAfterItsArrivalIsBad(t *testing.T) {
	dec, err := consumers.NewRecordDecoder("shardId-000000000000", consumers.HashKeyRange{})
	if err != nil {
		t.Fatal(err)
	}
	arrival := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	future := []byte(`{"type":"click","ts":"2099-12-04T19:00:00Z","user_id":"u-1"}`)
	soon := []byte(`{"type":"click","ts":"2026-12-05T18:00:00Z","user_id":"u-1"}`)
	recs := dec.Append(nil, consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: "u-1", ArrivalTime: arrival, Data: future})
	recs = dec.Append(recs, consumers.KinesisRecord{SequenceNumber: "2", PartitionKey: "u-1", ArrivalTime: arrival, Data: soon})
	var a kpl.Aggregator
	a.Add(kpl.Record{PartitionKey: "u-1", Data: future})
	a.Add(kpl.Record{PartitionKey: "u-1", Data: soon})
	agg, _, _ := a.Build()
	recs = dec.Append(recs, consumers.KinesisRecord{SequenceNumber: "3", PartitionKey: "u-1", ArrivalTime: arrival, Data: agg})
	var ee *event.Error
	for i, wantBad := range []bool{true, false, true, false} {
		if (recs[i].Err != nil) != wantBad || wantBad && (!errors.As(recs[i].Err, &ee) || ee.Field != "ts") {
			t.Errorf("record %d: err %v, want bad %v", i, recs[i].Err, wantBad)
		}
	}
}

// A batch's Records are sized from its Kinesis records so that decoding an
// aggregate of events ≥200 bytes appends without growing (copying) them,
// and without holding much more than it needs.
func TestRecordsCap_FitsAggregatesOfTypicalEvents(t *testing.T) {
	var a kpl.Aggregator
	const n = 400
	for i := range n {
		e := click(fmt.Sprintf("e-%d-%0180d", i, i), "u") // ~300 bytes, as producers send
		a.Add(kpl.Record{PartitionKey: "u", Data: e})
	}
	agg, pk, _ := a.Build()
	batch := []types.Record{
		{Data: click("p1", "u")}, {Data: agg, PartitionKey: &pk}, {Data: click("p2", "u")},
	}
	c := consumers.RecordsCap(batch)
	if want := n + 2; c < want || c > 2*want {
		t.Errorf("cap %d for %d records, want %d..%d", c, want, want, 2*want)
	}
	d, _ := consumers.NewRecordDecoder("s", consumers.HashKeyRange{})
	recs := make([]consumers.Record, 0, c)
	for _, kr := range batch {
		recs = d.Append(recs, consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: pk, ArrivalTime: arrival, Data: kr.Data})
	}
	if len(recs) != n+2 || cap(recs) != c {
		t.Errorf("%d records in a slice of cap %d, want %d in %d", len(recs), cap(recs), n+2, c)
	}
}

// After RecycleMaps, the next records' events are decoded into the
// recycled maps, emptied: each event is what decoding its record alone
// gives, and the records recycled no longer hold the maps.
func TestRecordDecoder_RecycledMapsAreReusedEmptied(t *testing.T) {
	d, _ := consumers.NewRecordDecoder("shardId-0", consumers.HashKeyRange{})
	impression := func(i int) []byte {
		return fmt.Appendf(nil, `{"v":1,"id":"i-%d","type":"impression","ts":1,"user_id":"u","features":{"f%d":%d},"attrs":{"k%d":"v"}}`, i, i, i, i)
	}
	var batch []consumers.Record
	for i := range 3 {
		batch = d.Append(batch, consumers.KinesisRecord{SequenceNumber: fmt.Sprint(i + 1), Data: impression(i)})
	}
	lent := map[uintptr]bool{}
	for _, r := range batch {
		lent[reflect.ValueOf(r.Event.Features).Pointer()] = true
		lent[reflect.ValueOf(r.Event.Attrs).Pointer()] = true
	}
	d.RecycleMaps(batch)
	for _, r := range batch {
		if r.Event.Features != nil || r.Event.Attrs != nil {
			t.Fatal("a recycled record still holds its maps")
		}
	}
	reused := 0
	for i := 3; i < 7; i++ {
		got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: fmt.Sprint(i + 1), Data: impression(i)})
		want, err := event.Decode(impression(i))
		if err != nil || got[0].Err != nil || !reflect.DeepEqual(got[0].Event, want) {
			t.Fatalf("record %d: %+v (%v), want %+v (%v)", i, got[0].Event, got[0].Err, want, err)
		}
		for _, m := range []any{got[0].Event.Features, got[0].Event.Attrs} {
			if lent[reflect.ValueOf(m).Pointer()] {
				reused++
			}
		}
	}
	if reused != 6 {
		t.Errorf("%d of the 6 recycled maps reused", reused)
	}
}

func TestRecordDecoder_VerifiedAggregatesDecodeAsHashedOnes(t *testing.T) {
	// An answer: plain records and aggregates, one of them corrupt, more
	// than VerifyAggregates hashes at a time.
	var krs []consumers.KinesisRecord
	for i := range 40 {
		seq := fmt.Sprint(100 + i)
		if i%4 == 0 {
			krs = append(krs, consumers.KinesisRecord{SequenceNumber: seq, PartitionKey: "u", ArrivalTime: arrival, Data: click("p"+seq, "u")})
			continue
		}
		var a kpl.Aggregator
		for j := range 1 + i%5 {
			a.Add(kpl.Record{PartitionKey: "u", Data: click(fmt.Sprint("a", seq, "-", j), "u")})
		}
		data, pk, _ := a.Build()
		if i == 13 {
			data[len(data)-1] ^= 1 // its MD5 no longer matches
		}
		krs = append(krs, consumers.KinesisRecord{SequenceNumber: seq, PartitionKey: pk, ArrivalTime: arrival, Data: data})
	}
	decodeAll := func(verify bool, skip int) []consumers.Record {
		d, _ := consumers.NewRecordDecoder("s", consumers.HashKeyRange{})
		if verify {
			d.VerifyAggregates(len(krs), func(i int) []byte { return krs[i].Data })
		}
		var out []consumers.Record
		for i, kr := range krs {
			if i != skip {
				out = append(out, d.Append(nil, kr)...)
			}
		}
		return out
	}
	same := func(name string, got, want []consumers.Record) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d records, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].Position != want[i].Position || got[i].Event.ID != want[i].Event.ID || (got[i].Err == nil) != (want[i].Err == nil) {
				t.Fatalf("%s: record %d = %v %q err %v, want %v %q err %v", name, i,
					got[i].Position, got[i].Event.ID, got[i].Err, want[i].Position, want[i].Event.ID, want[i].Err)
			}
		}
	}
	want := decodeAll(false, -1)
	if n := countCorrupt(want); n != 1 {
		t.Fatalf("%d corrupt records without VerifyAggregates, want 1", n)
	}
	same("verified", decodeAll(true, -1), want)
	if n := countCorrupt(decodeAll(true, -1)); n != 1 {
		t.Fatalf("%d corrupt records after VerifyAggregates, want 1", n)
	}
	// A caller that skips an aggregate: the ones after it are hashed as usual.
	wantSkip := decodeAll(false, 5)
	same("verified, one skipped", decodeAll(true, 5), wantSkip)
	if n := countCorrupt(decodeAll(true, 5)); n != 1 {
		t.Fatalf("%d corrupt records after a skip, want 1", n)
	}
}

// TestRecordDecoder_AnotherAggregateIsNotTakenForTheVerifiedOne: an
// aggregate appended where VerifyAggregates expected another one is hashed
// itself, even when the one expected was good.
func TestRecordDecoder_AnotherAggregateIsNotTakenForTheVerifiedOne(t *testing.T) {
	var a kpl.Aggregator
	a.Add(kpl.Record{PartitionKey: "u", Data: click("e0", "u")})
	good, pk, _ := a.Build()
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	d, _ := consumers.NewRecordDecoder("s", consumers.HashKeyRange{})
	d.VerifyAggregates(1, func(int) []byte { return good })
	got := d.Append(nil, consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: pk, ArrivalTime: arrival, Data: bad})
	if len(got) != 1 || !errors.Is(got[0].Err, kpl.ErrCorrupt) {
		t.Fatalf("got %+v, want one corrupt record", got)
	}
}

func countCorrupt(rs []consumers.Record) int {
	n := 0
	for _, r := range rs {
		if errors.Is(r.Err, kpl.ErrCorrupt) {
			n++
		}
	}
	return n
}

// TestRecordDecoder_RangeCheckOfManyUsersAcrossAggregates: partition keys
// met again and again, more of them than the decoder keeps hash keys for,
// are each judged by their own hash key.
func TestRecordDecoder_RangeCheckOfManyUsersAcrossAggregates(t *testing.T) {
	d, _ := consumers.NewRecordDecoder("s", lowerHalf)
	for agg := range 60 {
		var a kpl.Aggregator
		for j := range 100 {
			pk := fmt.Sprint("user-", (agg*37+j*11)%5000)
			a.Add(kpl.Record{PartitionKey: pk, Data: click(fmt.Sprint("e", agg, "-", j), pk)})
		}
		data, pk, _ := a.Build()
		for _, r := range d.Append(nil, consumers.KinesisRecord{SequenceNumber: fmt.Sprint(agg), PartitionKey: pk, ArrivalTime: arrival, Data: data}) {
			if want := hashKeyOf(r.PartitionKey).Cmp(mid) > 0; r.OutOfRange != want || r.Err != nil {
				t.Fatalf("aggregate %d, %s (%s): OutOfRange %v, want %v; err %v", agg, r.Event.ID, r.PartitionKey, r.OutOfRange, want, r.Err)
			}
		}
	}
}
