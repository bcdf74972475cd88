package archive

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/producers"
)

// The crash test re-executes the test binary as an archive process.
const (
	crashChildEnv = "ARCHIVE_CRASH_CHILD" // set: run as the child
	crashStream   = "ARCHIVE_CRASH_STREAM"
	crashTable    = "ARCHIVE_CRASH_TABLE"
	crashBucket   = "ARCHIVE_CRASH_BUCKET"
	crashOwner    = "ARCHIVE_CRASH_OWNER"
	// crashSuicide is the probability of SIGKILLing itself right after an
	// object upload (output written, state and checkpoint not) and right
	// after a state save (pending recorded, nothing uploaded; or written
	// recorded, checkpoint not).
	crashSuicide = "ARCHIVE_CRASH_SUICIDE"
)

// crashChildMain runs `clickstream consume archive` as the lead wires it,
// with small buffers (many flushes) and self-kill hooks, until SIGTERM.
func crashChildMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "archive crash child:", err); return 2 }
	c, err := awsx.Load(ctx)
	if err != nil {
		return fail(err)
	}
	suicide, _ := strconv.ParseFloat(os.Getenv(crashSuicide), 64)
	kill := func(where string) {
		p := suicide
		if where == "after-upload" {
			p /= 4 // uploads are several per flush; saves two
		}
		if rand.Float64() < p {
			fmt.Fprintln(os.Stderr, "SUICIDE", where)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is asynchronous: do nothing more
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bucket := os.Getenv(crashBucket)
	a, err := New(&killingS3{S3API: c.S3, after: kill}, Config{
		Bucket: bucket, MaxAge: time.Second, FlushRows: 300, MaxPartitions: 24, Logger: log,
	})
	if err != nil {
		return fail(err)
	}
	r, err := consumers.NewRunner(consumers.Config{
		Stream: os.Getenv(crashStream), Processor: &killingProcessor{Archive: a, after: kill}, Kinesis: c.Kinesis,
		Leases:     leases.NewDynamoStore(c.DynamoDB, os.Getenv(crashTable)),
		DeadLetter: consumers.NewS3DeadLetter(c.S3, bucket, ""),
		Owner:      os.Getenv(crashOwner), LeaseDuration: 1500 * time.Millisecond, RenewInterval: 300 * time.Millisecond,
		ShardSyncInterval: time.Second, PollInterval: 50 * time.Millisecond, IdleInterval: 150 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, ShutdownTimeout: 20 * time.Second, Logger: log,
		// CheckpointInterval keeps its 1s default: checkpoints lag the
		// positions reported durable, as in production.
	})
	if err != nil {
		return fail(err)
	}
	if err := r.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// killingS3 may kill the process right after an object becomes visible.
type killingS3 struct {
	S3API
	after func(where string)
}

func (k *killingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	out, err := k.S3API.PutObject(ctx, in, opts...)
	if err == nil {
		k.after("after-upload")
	}
	return out, err
}

func (k *killingS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	out, err := k.S3API.CompleteMultipartUpload(ctx, in, opts...)
	if err == nil {
		k.after("after-upload")
	}
	return out, err
}

// killingProcessor may kill the process right after a state save.
type killingProcessor struct {
	*Archive
	after func(where string)
}

func (p *killingProcessor) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	s.State = &killingState{StateStore: s.State, after: p.after}
	return p.Archive.OpenShard(ctx, s)
}

type killingState struct {
	consumers.StateStore
	after func(where string)
}

func (k *killingState) Save(ctx context.Context, b []byte) error {
	err := k.StateStore.Save(ctx, b)
	if err == nil {
		st, _ := unmarshalState(b)
		if st.Pending != nil {
			k.after("after-pending-saved")
		} else {
			k.after("after-written-saved")
		}
	}
	return err
}

// syncBuffer is a goroutine-safe bytes.Buffer for child stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestArchive_SIGKILLedAndRestartedArchivesEveryEventExactlyOnce(t *testing.T) {
	e := newITEnv(t, 2)
	ctx := context.Background()
	start := time.Now()

	// Produce continuously (KPL-aggregated) while processes are killed.
	var (
		mu     sync.Mutex
		events [][]byte
	)
	p, err := producers.New(e.c.Kinesis, e.stream, producers.WithLinger(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	prodCtx, stopProducing := context.WithCancel(ctx)
	prodDone := make(chan error, 1)
	go func() {
		for batch := 0; prodCtx.Err() == nil; batch++ {
			evs := genEvents(60, uint64(batch)+100)
			for i, data := range evs {
				data = bytes.ReplaceAll(data, []byte(`"id":"`), fmt.Appendf(nil, `"id":"b%d-`, batch))
				evs[i] = data
				if err := p.Put(ctx, producers.Record{PartitionKey: fmt.Sprint("k-", batch, "-", i%13), Data: data}); err != nil {
					prodDone <- err
					return
				}
			}
			mu.Lock()
			events = append(events, evs...)
			mu.Unlock()
			select {
			case <-prodCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		prodDone <- p.Close(ctx)
	}()

	stderr := &syncBuffer{}
	child := func(owner string, suicide float64) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashStream+"="+e.stream, crashTable+"="+e.table,
			crashBucket+"="+e.bucket, crashOwner+"="+owner, crashSuicide+"="+strconv.FormatFloat(suicide, 'f', -1, 64))
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	defer func() {
		if t.Failed() {
			t.Logf("children's stderr:\n%s", stderr.String())
		}
	}()
	kills, suicides := 0, 0
	for i := range 7 {
		// Most rounds reuse the owner id (its leases come back at once);
		// some are a new process that waits for the old leases to expire.
		owner := "archive-crash"
		if i%3 == 2 {
			owner = fmt.Sprintf("archive-crash-%d", i)
		}
		cmd := child(owner, 0.08)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-time.After(time.Duration(1000+rand.IntN(2500)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
		case err := <-exited:
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child exited by itself: %v", err)
			}
			suicides++
		}
	}
	stopProducing()
	if err := <-prodDone; err != nil {
		t.Fatalf("produce: %v", err)
	}
	mu.Lock()
	all := events
	mu.Unlock()

	t.Logf("%v: kill rounds done", time.Since(start))
	cmd := child("archive-crash-final", 0)
	good := countGood(all)
	waitForRows(t, ctx, e.c, e.bucket, "", int64(good), 120*time.Second)
	t.Logf("%v: the last process caught up", time.Since(start))
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop of the last process: %v", err)
	}
	where := map[string]int{}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if w, ok := strings.CutPrefix(line, "SUICIDE "); ok {
			where[w]++
		}
	}
	t.Logf("%d events (%d valid) produced; %d external SIGKILLs, %d self-SIGKILLs at %v", len(all), good, kills, suicides, where)
	if kills+suicides < 7 {
		t.Errorf("only %d kills", kills+suicides)
	}

	got := readArchive(t, ctx, e.c, e.bucket, "")
	checkArchived(t, "", got, all)
	checkDeadLetters(t, ctx, e.c, e.bucket, "", all)
	checkNoUnfinishedUploads(t, ctx, e.c, e.bucket)
}
