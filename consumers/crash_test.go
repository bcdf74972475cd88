package consumers_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// The crash test re-executes the test binary as a consumer process.
const (
	crashChildEnv = "CONSUMERS_CRASH_CHILD" // set: run as the child
	crashStream   = "CONSUMERS_CRASH_STREAM"
	crashTable    = "CONSUMERS_CRASH_TABLE"
	crashOut      = "CONSUMERS_CRASH_OUT"
	crashOwner    = "CONSUMERS_CRASH_OWNER"
	crashSuicide  = "CONSUMERS_CRASH_SUICIDE" // probability of SIGKILLing itself after output, before checkpoint
	crashReadMode = "CONSUMERS_CRASH_READ_MODE"
	crashReady    = "CONSUMERS_CRASH_READY" // a file the child creates once SIGTERM stops it gracefully
)

// crashChildMain runs a consumer whose processor appends every record's id
// to a file, fsynced before Process returns, until SIGTERM.
func crashChildMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "crash child:", err); return 2 }
	if path := os.Getenv(crashReady); path != "" {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			return fail(err)
		}
	}
	c, err := awsx.Load(ctx)
	if err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(os.Getenv(crashOut), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	suicide, _ := strconv.ParseFloat(os.Getenv(crashSuicide), 64)
	var mu sync.Mutex
	proc := consumers.SimpleProcessor("crash", func(ctx context.Context, b consumers.Batch) error {
		if len(b.Records) == 0 {
			return nil
		}
		var sb strings.Builder
		for _, r := range b.Records {
			p, err := parsePayload(r.Data)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, "%s %s %s\n", r.ShardID, r.Position, p.ID)
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.WriteString(sb.String()); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if rand.Float64() < suicide {
			// Output written, checkpoint not: the window that must replay.
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return nil
	})
	r, err := consumers.NewRunner(consumers.Config{
		Stream: os.Getenv(crashStream), Processor: proc, Kinesis: c.Kinesis,
		Leases: leases.NewDynamoStore(c.DynamoDB, os.Getenv(crashTable)), DeadLetter: consumers.NewMemoryDeadLetter(),
		Owner: os.Getenv(crashOwner), LeaseDuration: 1500 * time.Millisecond, RenewInterval: 300 * time.Millisecond,
		ShardSyncInterval: time.Second, PollInterval: 50 * time.Millisecond, IdleInterval: 150 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, CheckpointInterval: -1, ReadMode: os.Getenv(crashReadMode),
	})
	if err != nil {
		return fail(err)
	}
	if err := r.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// readSeen returns the ids the children wrote, with counts.
func readSeen(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 {
			out[fields[2]]++
		}
	}
	return out
}

func TestRunner_SIGKILLedProcessRestartedLosesNothing(t *testing.T) {
	t.Run("poll", func(t *testing.T) { testCrash(t, consumers.ReadPoll) })
	// Enhanced fan-out through the proxy (kinesis-local's own SubscribeToShard
	// is not usable by the SDK), whose subscriptions end every 2 s.
	t.Run("efo", func(t *testing.T) { testCrash(t, consumers.ReadEFO) })
}

func testCrash(t *testing.T, mode string) {
	e := newEnv(t, 4)
	endpoint := os.Getenv("AWS_ENDPOINT_URL_KINESIS")
	if mode == consumers.ReadEFO {
		endpoint = proxytest.Start(t, e.c, kinesisproxy.Config{Limits: kinesisproxy.AWSLimits(), SubscriptionLifetime: 2 * time.Second}).URL
	}
	out := filepath.Join(t.TempDir(), "seen.txt")
	p := newProducer(e.c, e.stream)
	us := users(12)
	stopProducing := background(100*time.Millisecond, func(ctx context.Context) error { return p.put(ctx, us) })
	defer func() { _ = stopProducing() }()

	// Watch the lease table: checkpoints never move backwards.
	var watchErr []string
	stopWatch := background(100*time.Millisecond, func(ctx context.Context) error {
		ls, err := e.store.List(ctx, "crash")
		if err != nil {
			return nil
		}
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		for _, l := range ls {
			if prev := e.store.last[l.ShardID]; prev.After(l.Checkpoint) {
				watchErr = append(watchErr, fmt.Sprintf("%s: checkpoint went back from %v to %v", l.ShardID, prev, l.Checkpoint))
			}
			e.store.last[l.ShardID] = l.Checkpoint
		}
		return nil
	})

	child := func(owner string, suicide float64, env ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashStream+"="+e.stream, crashTable+"="+e.table,
			crashReadMode+"="+mode, "AWS_ENDPOINT_URL_KINESIS="+endpoint,
			crashOut+"="+out, crashOwner+"="+owner, crashSuicide+"="+strconv.FormatFloat(suicide, 'f', -1, 64))
		cmd.Env = append(cmd.Env, env...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills, suicides := 0, 0
	for i := range 6 {
		// Even rounds reuse the owner id (leases come back at once); odd
		// rounds are a new process that must wait for lease expiry.
		owner := "crash-child"
		if i%2 == 1 {
			owner = fmt.Sprintf("crash-child-%d", i)
		}
		cmd := child(owner, 0.05)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-time.After(time.Duration(500+rand.IntN(1500)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
		case err := <-exited:
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child exited by itself: %v", err)
			}
			suicides++
		}
		t.Logf("round %d: %d records produced so far", i, len(p.produced()))
	}
	if err := stopProducing(); err != nil {
		t.Fatal(err)
	}
	want := p.produced()

	// The earlier processes may have written every id already, so the
	// catch-up below can hold at once: the SIGTERM after it must not reach
	// the last process before it handles the signal.
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := child("crash-final", 0, crashReady+"="+ready)
	waitFor(t, 30*time.Second, "the last process to handle SIGTERM", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	waitFor(t, 60*time.Second, "the last process to catch up", func() bool {
		seen := readSeen(t, out)
		for _, id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop of the last process: %v", err)
	}
	_ = stopWatch()
	for _, msg := range watchErr {
		t.Error(msg)
	}
	seen := readSeen(t, out)
	dups := 0
	for _, id := range want {
		dups += seen[id] - 1
	}
	t.Logf("%d records, %d SIGKILLs by the test, %d after output and before checkpoint, %d replayed duplicates",
		len(want), kills, suicides, dups)
}
