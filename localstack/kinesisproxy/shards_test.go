package kinesisproxy

import (
	"crypto/md5"
	"encoding/base64"
	"github.com/clickstream-go/clickstream/internal/hashkey"
	"math/big"
	"strings"
	"testing"
	"time"
)

func mustKey(t *testing.T, s string) hashKey {
	t.Helper()
	k, err := parseHashKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fourShards splits the key space like CreateStream with ShardCount 4.
func fourShards(t *testing.T) shardMap {
	max := new(big.Int).Lsh(big.NewInt(1), 128)
	q := new(big.Int).Rsh(max, 2)
	var rs []shardRange
	for i := int64(3); i >= 0; i-- { // out of order: newShardMap sorts
		start := new(big.Int).Mul(q, big.NewInt(i))
		end := new(big.Int).Sub(new(big.Int).Mul(q, big.NewInt(i+1)), big.NewInt(1))
		rs = append(rs, shardRange{id: "shardId-00000000000" + string(rune('0'+i)), start: mustKey(t, start.String()), end: mustKey(t, end.String())})
	}
	return newShardMap(rs)
}

func TestPartitionHash_IsMD5AsBigEndian128BitInteger(t *testing.T) {
	for _, k := range []string{"", "u-42", "a", "user-with-a-long-id-ümlaut"} {
		h := hashkey.Of(k)
		want := new(big.Int)
		sum := md5sum(k)
		want.SetBytes(sum[:])
		if got := mustKey(t, want.String()); got != h {
			t.Errorf("%q: hash %x%016x, want %s", k, h.Hi, h.Lo, want)
		}
	}
	// A known value: MD5("a") = 0cc175b9c0f1b6a831c399e269772661.
	if h := hashkey.Of("a"); h.Hi != 0x0cc175b9c0f1b6a8 || h.Lo != 0x31c399e269772661 {
		t.Fatalf("MD5(a) = %016x%016x", h.Hi, h.Lo)
	}
}

func TestParseHashKey_AcceptsTheWholeKeySpaceOnly(t *testing.T) {
	maxKey := "340282366920938463463374607431768211455" // 2^128 - 1
	if k := mustKey(t, maxKey); k.Hi != ^uint64(0) || k.Lo != ^uint64(0) {
		t.Fatalf("max key = %x %x", k.Hi, k.Lo)
	}
	if k := mustKey(t, "18446744073709551616"); k.Hi != 1 || k.Lo != 0 { // 2^64
		t.Fatalf("2^64 = %x %x", k.Hi, k.Lo)
	}
	for _, bad := range []string{"340282366920938463463374607431768211456", "-1", "", "12a", "0x10"} {
		if _, err := parseHashKey(bad); err == nil {
			t.Errorf("parseHashKey(%q) accepted", bad)
		}
	}
}

func TestShardMap_RoutesEveryHashToTheShardWhoseRangeHoldsIt(t *testing.T) {
	m := fourShards(t)
	cases := []struct{ key, shard string }{
		{"0", "shardId-000000000000"},
		{"85070591730234615865843651857942052863", "shardId-000000000000"}, // 2^126 - 1
		{"85070591730234615865843651857942052864", "shardId-000000000001"}, // 2^126
		{"170141183460469231731687303715884105727", "shardId-000000000001"},
		{"170141183460469231731687303715884105728", "shardId-000000000002"},
		{"255211775190703847597530955573826158591", "shardId-000000000002"},
		{"255211775190703847597530955573826158592", "shardId-000000000003"},
		{"340282366920938463463374607431768211455", "shardId-000000000003"},
	}
	for _, c := range cases {
		if got := m.route(mustKey(t, c.key)); got != c.shard {
			t.Errorf("route(%s) = %q, want %s", c.key, got, c.shard)
		}
	}
	// Partition keys: the top two bits of MD5 pick the shard.
	for _, k := range []string{"u-1", "u-2", "u-3", "u-42", "a"} {
		h := hashkey.Of(k)
		want := "shardId-00000000000" + string(rune('0'+h.Hi>>62))
		if got := m.route(h); got != want {
			t.Errorf("key %q routed to %s, want %s", k, got, want)
		}
	}
	// A map read mid-reshard may have a gap.
	gap := newShardMap([]shardRange{m[0], m[2], m[3]})
	if got := gap.route(mustKey(t, "85070591730234615865843651857942052864")); got != "" {
		t.Fatalf("a hash in a gap routed to %q", got)
	}
	explicit := "170141183460469231731687303715884105728"
	if h, _ := entryHash("u-1", &explicit); m.route(h) != "shardId-000000000002" {
		t.Fatal("the explicit hash key does not decide the shard")
	}
}

func TestDataLen_IsTheDecodedLengthOfBase64(t *testing.T) {
	for n := range 12 {
		b := []byte(strings.Repeat("x", n))
		if got := dataLen(base64.StdEncoding.EncodeToString(b)); got != n {
			t.Errorf("padded %d: %d", n, got)
		}
		if got := dataLen(base64.RawStdEncoding.EncodeToString(b)); got != n {
			t.Errorf("raw %d: %d", n, got)
		}
	}
}

func TestStreamName_FromNameOrARN(t *testing.T) {
	if got := streamName("", "arn:aws:kinesis:us-east-1:000000000000:stream/clicks"); got != "clicks" {
		t.Fatal(got)
	}
	if got := streamName("a", "arn:aws:kinesis:us-east-1:000000000000:stream/b"); got != "a" {
		t.Fatal(got)
	}
}

func TestBucket_HoldsOneSecondOfBurstAndRefillsAtItsRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newShardBuckets(Limits{WriteRecordsPerSec: 10, WriteBytesPerSec: 1000}.withDefaults(), t0)
	n := 0
	for b.admitWrite(t0, 50) {
		n++
	}
	if n != 10 {
		t.Fatalf("burst admitted %d records, want 10", n)
	}
	if b.admitWrite(t0.Add(50*time.Millisecond), 50) {
		t.Fatal("admitted with half a token")
	}
	if !b.admitWrite(t0.Add(100*time.Millisecond), 50) || b.admitWrite(t0.Add(100*time.Millisecond), 50) {
		t.Fatal("100ms did not refill exactly one record")
	}
	// Idle for a minute: still only one second's worth.
	t1 := t0.Add(time.Minute)
	n = 0
	for b.admitWrite(t1, 1) {
		n++
	}
	if n != 10 {
		t.Fatalf("after idling, burst admitted %d, want 10", n)
	}
}

func TestBucket_RecordsAndBytesAreTakenTogetherOrNotAtAll(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newShardBuckets(Limits{WriteRecordsPerSec: 100, WriteBytesPerSec: 1000}.withDefaults(), t0)
	if !b.admitWrite(t0, 600) {
		t.Fatal("first record refused")
	}
	if b.admitWrite(t0, 600) { // bytes short
		t.Fatal("admitted over the byte limit")
	}
	if got := b.writeRecords.tokens; got != 99 {
		t.Fatalf("a refused record took a record token: %v left", got)
	}
	if !b.admitWrite(t0, 400) { // a smaller record still fits, as on AWS
		t.Fatal("a record that fits was refused after a larger one")
	}
}

func TestBucket_OversizedRecordPassesAFullBucketAndLeavesDebt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newShardBuckets(Limits{WriteBytesPerSec: 1000}.withDefaults(), t0)
	if !b.admitWrite(t0, 3000) {
		t.Fatal("a record larger than the bucket never passes")
	}
	if b.admitWrite(t0.Add(1500*time.Millisecond), 1) {
		t.Fatal("admitted while in debt")
	}
	if !b.admitWrite(t0.Add(2100*time.Millisecond), 1) {
		t.Fatal("debt not repaid at the refill rate")
	}
}

func TestBucket_ReadsAreChargedAfterwardsSoABigReadThrottlesTheNextCalls(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newShardBuckets(Limits{ReadCallsPerSec: 5, ReadBytesPerSec: 2 << 20}.withDefaults(), t0)
	if !b.admitRead(t0) {
		t.Fatal("first read refused")
	}
	b.chargeRead(10 << 20) // 2 MiB saved up, 8 MiB of debt: 4 s at 2 MiB/s
	for _, d := range []time.Duration{time.Second, 3 * time.Second, 3900 * time.Millisecond} {
		if b.admitRead(t0.Add(d)) {
			t.Fatalf("read admitted %v after a 10 MiB read", d)
		}
	}
	if !b.admitRead(t0.Add(4100 * time.Millisecond)) {
		t.Fatal("read refused after the debt was repaid")
	}
	n := 0
	t2 := t0.Add(time.Minute)
	for b.admitRead(t2) {
		n++
	}
	if n != 5 {
		t.Fatalf("%d calls in a burst, want 5", n)
	}
}

func TestLimits_ZeroIsAWSAndNegativeIsUnlimited(t *testing.T) {
	if l := AWSLimits(); l.WriteBytesPerSec != 1<<20 || l.WriteRecordsPerSec != 1000 || l.ReadCallsPerSec != 5 ||
		l.ReadBytesPerSec != 2<<20 || l.Burst.D() != time.Second {
		t.Fatalf("AWS limits %+v", l)
	}
	b := newShardBuckets(NoLimits(), time.Unix(0, 0))
	for range 100000 {
		if !b.admitWrite(time.Unix(0, 0), 1<<20) || !b.admitRead(time.Unix(0, 0)) {
			t.Fatal("throttled without limits")
		}
	}
}

func md5sum(s string) [16]byte { return md5.Sum([]byte(s)) }
