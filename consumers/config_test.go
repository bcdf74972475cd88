package consumers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
)

func TestNewRunner_NamesEveryMissingRequirement(t *testing.T) {
	_, err := consumers.NewRunner(consumers.Config{})
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"Stream", "Processor", "Kinesis", "Leases", "DeadLetter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestNewRunner_RejectsRenewIntervalNotShorterThanLease(t *testing.T) {
	cfg := validConfig()
	cfg.LeaseDuration, cfg.RenewInterval = time.Second, time.Second
	if _, err := consumers.NewRunner(cfg); err == nil {
		t.Fatal("accepted")
	}
}

func TestNewRunner_DefaultsAppToProcessorNameAndOwnerToUniqueId(t *testing.T) {
	r1, err := consumers.NewRunner(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := consumers.NewRunner(validConfig())
	if r1.App() != "proc" {
		t.Errorf("App = %q", r1.App())
	}
	if r1.Owner() == "" || r1.Owner() == r2.Owner() {
		t.Errorf("owners %q and %q are not unique", r1.Owner(), r2.Owner())
	}
}

func TestNewRunner_SeveralRunnersShareOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, app := range []string{"archive", "vectors", "metrics", "archive"} {
		cfg := validConfig()
		cfg.App, cfg.Registerer = app, reg
		if _, err := consumers.NewRunner(cfg); err != nil {
			t.Fatalf("%s: %v", app, err)
		}
	}
}

func TestRunner_RefusesALeaseNamespaceOfAnotherStream(t *testing.T) {
	store := leases.NewMemoryStore()
	if err := store.Create(context.Background(), leases.Lease{App: "proc", ShardID: "shardId-0", Stream: "other"}); err != nil {
		t.Fatal(err)
	}
	cfg := validConfig()
	cfg.Leases = store
	cfg.Kinesis = noKinesis{}
	r, err := consumers.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `stream "other"`) {
		t.Fatalf("Run = %v, want a stream mismatch error", err)
	}
	if err := r.Run(ctx); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestRunAll_StopsEveryRunnerWhenOneFails(t *testing.T) {
	store := leases.NewMemoryStore()
	_ = store.Create(context.Background(), leases.Lease{App: "bad", ShardID: "shardId-0", Stream: "other"})
	good := validConfig()
	good.Leases, good.Kinesis = store, noKinesis{}
	bad := good
	bad.App = "bad"
	r1, _ := consumers.NewRunner(good)
	r2, _ := consumers.NewRunner(bad)
	done := make(chan error, 1)
	go func() { done <- consumers.RunAll(context.Background(), r1, r2) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "another stream") {
			t.Fatalf("RunAll = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunAll did not return after one runner failed")
	}
}

func TestSimpleProcessor_CheckpointsTheLastRecordOrTheGoodPrefix(t *testing.T) {
	fail := errors.New("boom")
	var failAt int
	p := consumers.SimpleProcessor("simple", func(ctx context.Context, b consumers.Batch) error {
		switch failAt {
		case -1:
			return fail
		case 0:
			return nil
		}
		return &consumers.BatchError{Index: failAt, Err: fail}
	})
	ctx := context.Background()
	sp, err := p.OpenShard(ctx, consumers.Shard{ID: "s", Checkpoint: pos("5", 0)})
	if err != nil {
		t.Fatal(err)
	}
	b := consumers.Batch{Records: []consumers.Record{{Position: pos("6", 0)}, {Position: pos("7", 0)}, {Position: pos("7", 1)}}}
	if got, err := sp.Process(ctx, b); err != nil || got != pos("7", 1) {
		t.Fatalf("Process = %v, %v", got, err)
	}
	if got, _ := sp.Process(ctx, consumers.Batch{}); !got.IsZero() {
		t.Fatalf("empty batch reported %v", got)
	}
	failAt = 2
	got, err := sp.Process(ctx, b)
	var be *consumers.BatchError
	if !errors.As(err, &be) || !errors.Is(err, fail) || got != pos("7", 0) {
		t.Fatalf("Process with BatchError = %v, %v", got, err)
	}
	failAt = -1
	if got, err := sp.Process(ctx, b); !errors.Is(err, fail) || !got.IsZero() {
		t.Fatalf("Process with plain error = %v, %v", got, err)
	}
	if got, err := sp.Flush(ctx); err != nil || got != pos("7", 0) {
		t.Fatalf("Flush = %v, %v", got, err)
	}
}

func validConfig() consumers.Config {
	return consumers.Config{
		Stream: "s", Processor: consumers.SimpleProcessor("proc", func(context.Context, consumers.Batch) error { return nil }),
		Kinesis: noKinesis{}, Leases: leases.NewMemoryStore(), DeadLetter: consumers.NewMemoryDeadLetter(),
		LeaseDuration: time.Second, RenewInterval: 100 * time.Millisecond,
	}
}

// noKinesis fails every call: for tests that never reach the stream.
type noKinesis struct{}

var errNoKinesis = errors.New("no kinesis in this test")

func (noKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return nil, errNoKinesis
}

func (noKinesis) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return nil, errNoKinesis
}

func (noKinesis) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return nil, errNoKinesis
}
