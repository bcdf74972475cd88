package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DeadLetter stores bad records (undecodable, invalid, corrupt aggregates)
// durably with the reason. Put must be idempotent: the same record put twice
// (a replay, or several applications reading the same stream) ends up as one
// entry.
type DeadLetter interface {
	Put(ctx context.Context, recs []Record) error
}

// DeadLetterEntry is what a dead-letter sink stores per bad record. It holds
// nothing about who processed the record, so replays and other applications
// write identical bytes.
type DeadLetterEntry struct {
	ShardID           string    `json:"shard_id"`
	SequenceNumber    string    `json:"sequence_number"`
	SubSequenceNumber int64     `json:"sub_sequence_number"`
	PartitionKey      string    `json:"partition_key"`
	ExplicitHashKey   string    `json:"explicit_hash_key,omitempty"`
	ArrivalTime       time.Time `json:"arrival_ts"`
	Aggregated        bool      `json:"aggregated"`
	Reason            string    `json:"reason"`
	Data              []byte    `json:"data_base64"` // raw bytes; JSON encodes []byte as base64
}

// NewDeadLetterEntry describes a bad record.
func NewDeadLetterEntry(r Record) DeadLetterEntry {
	reason := "unknown"
	if r.Err != nil {
		reason = r.Err.Error()
	}
	return DeadLetterEntry{
		ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequence,
		PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, ArrivalTime: r.ArrivalTime.UTC(),
		Aggregated: r.Aggregated, Reason: reason, Data: r.Data,
	}
}

// DeadLetterKey is the object key of a bad record under prefix:
// PREFIX/errors/dt=YYYY-MM-DD/SHARD/SEQUENCE-SUB.json, dated by arrival time
// (stored in Kinesis, so a replay computes the same key) and named by shard,
// sequence and sub-sequence: one object per record, overwritten on replay.
func DeadLetterKey(prefix string, r Record) string {
	day := r.ArrivalTime.UTC().Format(time.DateOnly)
	name := r.SequenceNumber + "-" + strconv.FormatInt(r.SubSequence, 10) + ".json"
	return path.Join(strings.Trim(prefix, "/"), "errors", "dt="+day, r.ShardID, name)
}

// S3API is the part of the S3 client S3DeadLetter uses.
type S3API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// S3DeadLetter writes each bad record as one JSON object (DeadLetterEntry)
// at DeadLetterKey under s3://Bucket/Prefix (docs/DESIGN.md §4.1).
type S3DeadLetter struct {
	client S3API
	bucket string
	prefix string
	// Concurrency is the number of parallel PutObject calls per Put; default 8.
	Concurrency int
}

var _ DeadLetter = (*S3DeadLetter)(nil)

// NewS3DeadLetter returns a sink writing to s3://bucket/prefix/errors/...;
// prefix may be empty.
func NewS3DeadLetter(client S3API, bucket, prefix string) *S3DeadLetter {
	return &S3DeadLetter{client: client, bucket: bucket, prefix: prefix, Concurrency: 8}
}

// Put implements DeadLetter. It returns the first error after trying every
// record; the caller retries the whole slice (puts are idempotent).
func (s *S3DeadLetter) Put(ctx context.Context, recs []Record) error {
	n := max(s.Concurrency, 1)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	for i := range recs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = s.put(ctx, recs[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *S3DeadLetter) put(ctx context.Context, r Record) error {
	body, err := json.Marshal(NewDeadLetterEntry(r))
	if err != nil {
		return fmt.Errorf("encode dead letter %s/%s: %w", r.ShardID, r.Position, err)
	}
	key := DeadLetterKey(s.prefix, r)
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("put dead letter s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

// MemoryDeadLetter keeps bad records in memory, keyed like S3DeadLetter; for
// tests and local experiments.
type MemoryDeadLetter struct {
	mu      sync.Mutex
	entries map[string]DeadLetterEntry
	puts    int
	// Fail, when set, is returned by Put (fault injection in tests).
	Fail error
}

var _ DeadLetter = (*MemoryDeadLetter)(nil)

// NewMemoryDeadLetter returns an empty in-memory sink.
func NewMemoryDeadLetter() *MemoryDeadLetter {
	return &MemoryDeadLetter{entries: map[string]DeadLetterEntry{}}
}

// Put implements DeadLetter.
func (m *MemoryDeadLetter) Put(ctx context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	for _, r := range recs {
		e := NewDeadLetterEntry(r)
		e.Data = slices.Clone(e.Data)
		m.entries[DeadLetterKey("", r)] = e
		m.puts++
	}
	return nil
}

// Entries returns the stored entries sorted by key.
func (m *MemoryDeadLetter) Entries() []DeadLetterEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.entries))
	for k := range m.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]DeadLetterEntry, len(keys))
	for i, k := range keys {
		out[i] = m.entries[k]
	}
	return out
}

// LogDeadLetter only logs bad records (at Warn, with the reason, the
// position and up to 256 raw bytes) and keeps nothing: for local runs
// without a bucket. Production deployments use S3DeadLetter.
type LogDeadLetter struct{ Logger *slog.Logger }

// Put implements DeadLetter.
func (l LogDeadLetter) Put(ctx context.Context, recs []Record) error {
	lg := l.Logger
	if lg == nil {
		lg = slog.Default()
	}
	for _, r := range recs {
		data := r.Data
		if len(data) > 256 {
			data = data[:256]
		}
		lg.LogAttrs(ctx, slog.LevelWarn, "bad record",
			slog.String("shard", r.ShardID), slog.String("position", r.Position.String()),
			slog.String("partition_key", r.PartitionKey), slog.Any("reason", r.Err), slog.String("data", string(data)))
	}
	return nil
}
