package producers

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/clickstream-go/clickstream/kpl"
)

// fakeKinesis is an in-memory Kinesis for pure-logic tests: it routes by
// hash key (with math/big, independently of the producer's code), enforces
// the PutRecords limits, injects faults, and records every violation of the
// producer's promises (limits; never two calls in flight holding one
// partition key, which per-key ordering rests on).
type fakeKinesis struct {
	mu         sync.Mutex
	shards     []*fakeShard
	seq        int64
	calls      int
	entries    int // entries received across calls
	maxEntries int // largest call seen
	maxBytes   int
	active     map[string]int // partition key → calls in flight holding it
	violations []string
	listCalls  int
	pageSize   int

	// Fault injection; all optional. Called with mu held.
	failCall  func(call int) error                                            // whole-call error
	failEntry func(call, i int, e types.PutRecordsRequestEntry) (code string) // per-entry error code
	failList  func(n int) error
	block     chan struct{} // PutRecords waits until it is closed (or ctx ends)
	onCall    func(call int)
}

type fakeShard struct {
	id         string
	start, end *big.Int
	closed     bool
	recs       []fakeRec
}

type fakeRec struct {
	pk, ehk string
	data    []byte
	seq     int64
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// newFake returns a stream of n shards splitting the hash space evenly.
func newFake(n int) *fakeKinesis {
	f := &fakeKinesis{active: map[string]int{}, pageSize: 2}
	size := new(big.Int).Div(new(big.Int).Add(maxHash, big.NewInt(1)), big.NewInt(int64(n)))
	for i := range n {
		start := new(big.Int).Mul(size, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, size), big.NewInt(1))
		if i == n-1 {
			end = maxHash
		}
		f.shards = append(f.shards, &fakeShard{id: fmt.Sprintf("shardId-%012d", i), start: start, end: end})
	}
	return f
}

func fakeHash(pk, ehk string) *big.Int {
	if ehk != "" {
		h, _ := new(big.Int).SetString(ehk, 10)
		return h
	}
	sum := md5.Sum([]byte(pk))
	return new(big.Int).SetBytes(sum[:])
}

func (f *fakeKinesis) shardFor(h *big.Int) *fakeShard {
	for _, s := range f.shards {
		if !s.closed && s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 {
			return s
		}
	}
	return nil
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "injected " + code}
}

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	if f.onCall != nil {
		f.onCall(call)
	}
	total := 0
	var keys []string // the user records' partition keys, once per call
	inCall := map[string]bool{}
	for _, e := range in.Records {
		n := len(e.Data) + len(aws.ToString(e.PartitionKey))
		total += n
		if n > MaxRecordBytes {
			f.violations = append(f.violations, fmt.Sprintf("call %d: record of %d bytes", call, n))
		}
		if aws.ToString(e.PartitionKey) == "" {
			f.violations = append(f.violations, fmt.Sprintf("call %d: empty partition key", call))
		}
		urs, err := kpl.Deaggregate(e.Data, aws.ToString(e.PartitionKey))
		if err != nil {
			f.violations = append(f.violations, fmt.Sprintf("call %d: %v", call, err))
		}
		for _, u := range urs {
			if !inCall[u.PartitionKey] {
				inCall[u.PartitionKey] = true
				keys = append(keys, u.PartitionKey)
			}
		}
	}
	if len(in.Records) > MaxRequestRecords || total > MaxRequestBytes || len(in.Records) == 0 {
		f.violations = append(f.violations, fmt.Sprintf("call %d: %d records, %d bytes", call, len(in.Records), total))
	}
	f.entries += len(in.Records)
	f.maxEntries = max(f.maxEntries, len(in.Records))
	f.maxBytes = max(f.maxBytes, total)
	for _, k := range keys {
		if f.active[k]++; f.active[k] > 1 {
			f.violations = append(f.violations, fmt.Sprintf("call %d: a second call in flight holds key %s", call, k))
		}
	}
	defer func() {
		f.mu.Lock()
		for _, k := range keys {
			f.active[k]--
		}
		f.mu.Unlock()
	}()
	block := f.block
	f.mu.Unlock()

	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCall != nil {
		if err := f.failCall(call); err != nil {
			return nil, err
		}
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	failed := int32(0)
	for i, e := range in.Records {
		if f.failEntry != nil {
			if code := f.failEntry(call, i, e); code != "" {
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected")}
				failed++
				continue
			}
		}
		s := f.shardFor(fakeHash(aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey)))
		f.seq++
		s.recs = append(s.recs, fakeRec{pk: aws.ToString(e.PartitionKey), ehk: aws.ToString(e.ExplicitHashKey), data: e.Data, seq: f.seq})
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(s.id), SequenceNumber: aws.String(strconv.FormatInt(f.seq, 10))}
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

func (f *fakeKinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls++
	if f.failList != nil {
		if err := f.failList(f.listCalls); err != nil {
			return nil, err
		}
	}
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil || in.StreamARN != nil {
			return nil, apiError("InvalidArgumentException")
		}
		start, _ = strconv.Atoi(*in.NextToken)
	} else if in.StreamName == nil && in.StreamARN == nil {
		return nil, apiError("InvalidArgumentException")
	}
	out := &kinesis.ListShardsOutput{}
	for i := start; i < len(f.shards) && i < start+f.pageSize; i++ {
		s := f.shards[i]
		sh := types.Shard{
			ShardId:             aws.String(s.id),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(s.start.String()), EndingHashKey: aws.String(s.end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("9")
		}
		out.Shards = append(out.Shards, sh)
	}
	if start+f.pageSize < len(f.shards) {
		out.NextToken = aws.String(strconv.Itoa(start + f.pageSize))
	}
	return out, nil
}

// split closes the shard and adds two children halving its range.
func (f *fakeKinesis) split(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.shards {
		if s.id != id {
			continue
		}
		s.closed = true
		mid := new(big.Int).Rsh(new(big.Int).Add(s.start, s.end), 1)
		n := len(f.shards)
		f.shards = append(f.shards,
			&fakeShard{id: fmt.Sprintf("shardId-%012d", n), start: s.start, end: mid},
			&fakeShard{id: fmt.Sprintf("shardId-%012d", n+1), start: new(big.Int).Add(mid, big.NewInt(1)), end: s.end})
		return
	}
	panic("no shard " + id)
}

// userRec is one de-aggregated user record as stored by the fake.
type userRec struct {
	kpl.Record
	shard *fakeShard
	seq   int64 // Kinesis sequence of the record that carried it
}

// userRecords de-aggregates everything stored, in sequence order.
func (f *fakeKinesis) userRecords() ([]userRec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []userRec
	for _, s := range f.shards {
		for _, r := range s.recs {
			rs, err := kpl.Deaggregate(r.data, r.pk)
			if err != nil {
				return nil, err
			}
			for _, u := range rs {
				out = append(out, userRec{Record: u, shard: s, seq: r.seq})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b userRec) int { return int(a.seq - b.seq) })
	return out, nil
}

func (f *fakeKinesis) stats() (calls, entries, maxEntries, maxBytes int, violations []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.entries, f.maxEntries, f.maxBytes, slices.Clone(f.violations)
}
