package e2e

import (
	"context"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/awsx"
)

// The crash test re-executes the test binary as a consumer process
// (TestMain dispatches on crashChildEnv).
const (
	crashChildEnv  = "VECTORS_CRASH_CHILD"
	crashStream    = "VECTORS_CRASH_STREAM"
	crashLeases    = "VECTORS_CRASH_LEASES"
	crashTable     = "VECTORS_CRASH_TABLE"
	crashOwner     = "VECTORS_CRASH_OWNER"
	crashAfterProc = "VECTORS_CRASH_AFTER_PROCESS" // P(SIGKILL self) after Process returned, before the checkpoint
	crashMidBatch  = "VECTORS_CRASH_MID_BATCH"     // P(SIGKILL self) after each successful UpdateItem
	crashLog       = "VECTORS_CRASH_LOG"           // file the child notes its self-kills in
)

// selfKill notes why in the crash log, then SIGKILLs this process.
func selfKill(why string) {
	if f, err := os.OpenFile(os.Getenv(crashLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		_, _ = f.WriteString(why + "\n")
		_ = f.Sync()
		_ = f.Close()
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

func envFloat(name string) float64 {
	f, _ := strconv.ParseFloat(os.Getenv(name), 64)
	return f
}

// crashChildMain runs `clickstream consume vectors` as the lead wires it,
// plus two self-kill points, until SIGTERM.
func crashChildMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "vectors crash child:", err); return 2 }
	c, err := awsx.Load(ctx)
	if err != nil {
		return fail(err)
	}
	p, err := vectors.New(&killingDB{DynamoDBAPI: c.DynamoDB, p: envFloat(crashMidBatch)}, vectors.Config{Table: os.Getenv(crashTable)})
	if err != nil {
		return fail(err)
	}
	cfg := runnerConfig(c, os.Getenv(crashStream), os.Getenv(crashLeases), &killingProcessor{Processor: p, p: envFloat(crashAfterProc)}, os.Getenv(crashOwner))
	cfg.CheckpointInterval = -1 // checkpoint after every batch: the most crash windows
	r, err := consumers.NewRunner(cfg)
	if err != nil {
		return fail(err)
	}
	if err := r.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// killingDB SIGKILLs the process after a successful UpdateItem with
// probability p: a batch half written.
type killingDB struct {
	vectors.DynamoDBAPI
	p float64
}

func (k *killingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := k.DynamoDBAPI.UpdateItem(ctx, in, o...)
	if err == nil && rand.Float64() < k.p {
		selfKill("mid-batch")
	}
	return out, err
}

// killingProcessor SIGKILLs the process after a batch's writes all
// returned, before the runtime checkpoints: the window where a replay must
// change nothing.
type killingProcessor struct {
	consumers.Processor
	p float64
}

func (k *killingProcessor) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	sp, err := k.Processor.OpenShard(ctx, s)
	return &killingShard{ShardProcessor: sp, p: k.p}, err
}

type killingShard struct {
	consumers.ShardProcessor
	p float64
}

func (k *killingShard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	pos, err := k.ShardProcessor.Process(ctx, b)
	if err == nil && len(b.Records) > 0 && rand.Float64() < k.p {
		selfKill("after-process")
	}
	return pos, err
}

// TestVectors_SIGKILLedConsumerRestartedEqualsDirectComputation: consumer
// processes killed with SIGKILL — by the test at random times, by
// themselves between "vectors written" and "checkpoint written", and in the
// middle of a batch's writes — and restarted while events are produced;
// the final vectors equal the direct computation: no event counted twice,
// none missing.
func TestVectors_SIGKILLedConsumerRestartedEqualsDirectComputation(t *testing.T) {
	s := newStack(t, 4)
	end := time.Now().UTC().Truncate(time.Millisecond)
	evs := genEvents(21, 4000, 200, end, 20*24*time.Hour)
	want := countVectorEvents(evs)

	// Produce during the whole crash phase: 400 events/s for 10 s.
	tp := newTestProducer(t, s.c, s.stream, 50*time.Millisecond)
	produced := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(evs); i += 40 {
			<-tick.C
			for j := i; j < min(i+40, len(evs)); j++ {
				if err := tp.put(context.Background(), &evs[j]); err != nil {
					produced <- err
					return
				}
			}
		}
		produced <- nil
	}()

	killLog := filepath.Join(t.TempDir(), "kills.txt")
	child := func(owner string, afterProcess, midBatch float64) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashStream+"="+s.stream, crashLeases+"="+s.leaseTable,
			crashTable+"="+s.table, crashOwner+"="+owner, crashLog+"="+killLog,
			crashAfterProc+"="+strconv.FormatFloat(afterProcess, 'f', -1, 64),
			crashMidBatch+"="+strconv.FormatFloat(midBatch, 'f', -1, 64))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	var kills, selfKills atomic.Int64
	deadline := time.Now().Add(11 * time.Second)
	for round := 0; time.Now().Before(deadline) || round < 6; round++ {
		// Even rounds reuse the owner (leases come back at once); odd rounds
		// are a new process that waits for the dead one's leases to expire.
		owner := "vectors-child"
		if round%2 == 1 {
			owner = fmt.Sprint("vectors-child-", round)
		}
		cmd := child(owner, 0.15, 0.004)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-time.After(time.Duration(700+rand.IntN(1800)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills.Add(1)
		case err := <-exited:
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child exited by itself: %v", err)
			}
			selfKills.Add(1)
		}
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	tp.flush(t)
	notes, _ := os.ReadFile(killLog)
	t.Logf("after %d kills by the test and %d self-kills (%d after Process returned, before the checkpoint; %d in the middle of a batch's writes): %d of %d events applied",
		kills.Load(), selfKills.Load(), strings.Count(string(notes), "after-process"), strings.Count(string(notes), "mid-batch"),
		appliedEvents(t, s.c.DynamoDB, s.table), want)
	if selfKills.Load() == 0 {
		t.Error("no process died between writing vectors and the checkpoint: the test missed its main window")
	}

	final := child("vectors-final", 0, 0)
	// Wait until it holds every shard, not only until everything is applied
	// (the killed processes may have applied it all): a SIGTERM before its
	// signal handler is installed would kill it, not stop it.
	ls := leases.NewDynamoStore(s.c.DynamoDB, s.leaseTable)
	waitUntil(t, 90*time.Second, "the last process to hold every shard and catch up", func() bool {
		held, err := ls.List(context.Background(), vectors.Name)
		if err != nil || len(held) == 0 {
			return false
		}
		for _, l := range held {
			if l.Owner != "vectors-final" {
				return false
			}
		}
		return appliedEvents(t, s.c.DynamoDB, s.table) >= want
	})
	_ = final.Process.Signal(syscall.SIGTERM)
	if err := final.Wait(); err != nil {
		t.Fatalf("graceful stop of the last process: %v", err)
	}
	rd := vectors.NewReader(s.c.DynamoDB, vectors.ReaderConfig{Table: s.table, ConsistentRead: true})
	compareWithDirect(t, rd, evs, end.Add(time.Hour), vectors.DefaultHalfLife)
	if got := appliedEvents(t, s.c.DynamoDB, s.table); got != want {
		t.Fatalf("%d events applied, want exactly %d", got, want)
	}
}
