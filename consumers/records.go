package consumers

import (
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/hashkey"
	"github.com/clickstream-go/clickstream/kpl"
)

// KinesisRecord is one record as Kinesis stores it, from GetRecords or from
// a Lambda event.
type KinesisRecord struct {
	SequenceNumber string
	PartitionKey   string
	ArrivalTime    time.Time
	Data           []byte // possibly a KPL aggregate
}

// HashKeyRange is a shard's range of 128-bit hash keys, as decimal strings
// (what ListShards returns). The zero value means unknown: no range check.
type HashKeyRange struct {
	Start, End string
}

// IsZero reports whether the range is unknown.
func (r HashKeyRange) IsZero() bool { return r.Start == "" && r.End == "" }

// RecordDecoder turns the Kinesis records of one shard into user records:
// KPL de-aggregation (MD5 verified), event decoding, and the hash-key range
// check of aggregated sub-records. The long-running runtime and the Lambda
// adapter share it, so both hand processors identical records.
type RecordDecoder struct {
	shardID    string
	checkRange bool
	rng        hashkey.Range
	sub        []kpl.Record // reused across Append calls
	maps       *event.Maps  // lends events their maps (RecycleMaps); nil: made
	lists      *event.Lists // holds events' features and attrs (UseLists); nil: maps

	// checked are the aggregates VerifyAggregates hashed, in order, and
	// checkedOK whether each one's MD5 matched; Append takes them as it
	// meets them (next), dropping each reference once taken.
	checked   [][]byte
	checkedOK []bool
	next      int

	// keys are the hash keys of partition keys met in aggregates, for the
	// range check: a user's events follow each other on a shard, and an
	// MD5 for every sub-record was ~5% of the archive's CPU on aggregated
	// records. Emptied when it holds maxCachedKeys.
	keys map[string]hashkey.Key
}

// maxCachedKeys bounds RecordDecoder.keys: ~100 KB a shard, room for the
// users active on a shard at once (the load generator keeps 200 sessions
// open on the whole stream).
const maxCachedKeys = 2048

// NewRecordDecoder returns a decoder for shardID; a zero range disables the
// out-of-range check (Lambda events carry no shard ranges).
func NewRecordDecoder(shardID string, r HashKeyRange) (*RecordDecoder, error) {
	d := &RecordDecoder{shardID: shardID}
	if r.IsZero() {
		return d, nil
	}
	var err error
	if d.rng, err = hashkey.ParseRange(r.Start, r.End); err != nil {
		return nil, fmt.Errorf("shard %s range: %w", shardID, err)
	}
	d.checkRange = true
	return d, nil
}

// recordsCap sizes the Records of a batch of Kinesis records: one per
// plain record, and one per 200 bytes of an aggregate (events are seldom
// smaller; append grows the slice when they are). Sized by the aggregates'
// count, the slice grew by appending, copying every Record (~500 bytes)
// about twice more: 8% of the archive's CPU on KPL-aggregated records.
func recordsCap(krs []types.Record) int {
	n, aggregated := 0, 0
	for i := range krs {
		if kpl.IsAggregated(krs[i].Data) {
			aggregated += len(krs[i].Data)
		} else {
			n++
		}
	}
	return n + aggregated/200
}

// RecycleMaps hands the Features and Attrs maps of rs's events to later
// Append calls, which decode into them instead of making new ones (~12% of
// decoding an impression, and most of the bytes it allocated). The maps
// are taken from rs: call it only once nothing uses rs's maps any more.
func (d *RecordDecoder) RecycleMaps(rs []Record) {
	if d.maps == nil {
		d.maps = new(event.Maps)
	}
	for i := range rs {
		d.maps.Recycle(&rs[i].Event)
	}
}

// UseLists makes Append decode the features and attrs of events into
// Event.FeatureList and AttrList instead of the maps (event.DecodeLists),
// for a processor that reads them so (EventListsReader). ResetLists then
// reuses their memory for later events.
func (d *RecordDecoder) UseLists() {
	if d.lists == nil {
		d.lists = new(event.Lists)
	}
}

// ResetLists reuses the memory of the lists of the events decoded so far
// for later events (event.Lists.Reset): call it only once nothing uses
// those events' lists any more.
func (d *RecordDecoder) ResetLists() {
	if d.lists != nil {
		d.lists.Reset()
	}
}

// VerifyAggregates verifies the MD5 of the KPL aggregates among the next n
// Kinesis records to be appended (record i's data is data(i)), several at
// once on one core (kpl.VerifyChecksums: 2-3× less CPU than hashing them
// one by one, which was 11% of the archive's CPU on aggregated records).
// Append then de-aggregates each of them, met in the same order, without
// hashing it again; an aggregate it does not meet where expected (another
// record, other bytes) is hashed as usual, so a caller that skips records
// only loses the saving.
func (d *RecordDecoder) VerifyAggregates(n int, data func(i int) []byte) {
	clear(d.checked)
	d.checked, d.next = d.checked[:0], 0
	for i := range n {
		if b := data(i); kpl.IsAggregated(b) {
			d.checked = append(d.checked, b)
		}
	}
	if len(d.checked) == 0 {
		return
	}
	d.checkedOK = slices.Grow(d.checkedOK[:0], len(d.checked))[:len(d.checked)]
	kpl.VerifyChecksums(d.checked, d.checkedOK)
}

// verified reports whether VerifyAggregates found the aggregate data good,
// and forgets it.
func (d *RecordDecoder) verified(data []byte) bool {
	if d.next >= len(d.checked) {
		return false
	}
	c := d.checked[d.next]
	if len(c) != len(data) || unsafe.SliceData(c) != unsafe.SliceData(data) {
		return false
	}
	d.checked[d.next] = nil
	d.next++
	return d.checkedOK[d.next-1]
}

// route is the hash key a sub-record goes by (hashkey.Route). One with an
// unparsable explicit hash key is routed by its partition key: still
// processed, judged by what Kinesis would do.
func (d *RecordDecoder) route(partitionKey, explicitHashKey string) hashkey.Key {
	if explicitHashKey != "" {
		if k, err := hashkey.Parse(explicitHashKey); err == nil {
			return k
		}
	}
	if k, ok := d.keys[partitionKey]; ok {
		return k
	}
	if d.keys == nil || len(d.keys) >= maxCachedKeys {
		d.keys = make(map[string]hashkey.Key, maxCachedKeys)
	}
	k := hashkey.Of(partitionKey)
	d.keys[partitionKey] = k
	return k
}

// decode decodes one event into e; an event whose ts is more than
// event.DefaultMaxFuture after the record's arrival is bad too (a wrong
// device clock), judged against the arrival time so a replay decides alike.
// The event's strings point into data (event.DecodeWith): record data is
// never modified once read, and copying each record for its strings was
// ~2% of a consumer's CPU and a third of the bytes decoding allocated.
func (d *RecordDecoder) decode(e *event.Event, data []byte, arrival time.Time) error {
	var err error
	if d.lists != nil {
		err = event.DecodeLists(data, e, d.lists)
	} else {
		err = event.DecodeWith(data, e, d.maps)
	}
	if err == nil {
		err = e.CheckFuture(arrival, event.DefaultMaxFuture)
	}
	return err
}

// Append appends the user records of kr to dst and returns the extended
// slice. A plain record becomes one Record at sub-sequence 0; an aggregate
// becomes one Record per sub-record at sub-sequences 0..n-1; a corrupt
// aggregate becomes one bad Record at sub-sequence 0 carrying the whole raw
// record. Records whose event does not decode, or is dated more than
// event.DefaultMaxFuture after its arrival, carry the reason in Err.
// Data slices alias kr.Data.
func (d *RecordDecoder) Append(dst []Record, kr KinesisRecord) []Record {
	base := Record{
		Position:     Position{SequenceNumber: kr.SequenceNumber},
		ShardID:      d.shardID,
		PartitionKey: kr.PartitionKey,
		ArrivalTime:  kr.ArrivalTime,
	}
	// Events are decoded in their Record's slot: a Record is ~500 bytes
	// of pointers and strings, and copying the Event out of Decode and the
	// Record into dst cost ~10% of BenchmarkRecordDecoder (2.45 → 2.16 µs
	// a plain record, 3.25 → 2.93 per user record of an aggregate).
	if !kpl.IsAggregated(kr.Data) {
		dst = append(dst, base)
		r := &dst[len(dst)-1]
		r.Data = kr.Data
		r.Err = d.decode(&r.Event, kr.Data, kr.ArrivalTime)
		return dst
	}
	var subs []kpl.Record
	var err error
	if d.verified(kr.Data) {
		subs, err = kpl.AppendVerified(d.sub[:0], kr.Data, kr.PartitionKey)
	} else {
		subs, err = kpl.AppendDeaggregated(d.sub[:0], kr.Data, kr.PartitionKey)
	}
	d.sub = subs
	if err != nil {
		r := base
		r.Data = kr.Data
		r.Aggregated = true
		r.Err = fmt.Errorf("de-aggregate record %s: %w", kr.SequenceNumber, err)
		return append(dst, r)
	}
	for i, s := range subs {
		dst = append(dst, base)
		r := &dst[len(dst)-1]
		r.SubSequence = int64(i)
		r.PartitionKey = s.PartitionKey
		r.ExplicitHashKey = s.ExplicitHashKey
		r.Data = s.Data
		r.Aggregated = true
		if d.checkRange {
			r.OutOfRange = !d.rng.Contains(d.route(s.PartitionKey, s.ExplicitHashKey))
		}
		r.Err = d.decode(&r.Event, s.Data, kr.ArrivalTime)
	}
	clear(subs) // drop references to kr.Data held by the reused slice
	return dst
}
