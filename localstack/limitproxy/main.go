// Command limitproxy runs the shard-limit proxy (localstack/kinesisproxy) in
// front of a Kinesis emulator: AWS's per-shard throughput limits, enforced
// the way AWS enforces them, and faults injected on demand. stack.sh starts
// it with LIMITS=aws; see localstack/README.md.
//
//	limitproxy -listen 127.0.0.1:4568 -upstream http://127.0.0.1:4668
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "limitproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen   = flag.String("listen", "127.0.0.1:4568", "address to serve on (the Kinesis endpoint clients use)")
		upstream = flag.String("upstream", "http://127.0.0.1:4668", "the Kinesis emulator's URL")
		limits   = flag.String("limits", "aws", "aws: AWS's per-shard limits (adjust with the -write-*/-read-* flags); none: no limits, faults only")
		l        kinesisproxy.Limits
		f        kinesisproxy.Faults
		burst    = flag.Duration("burst", kinesisproxy.DefaultBurst, "unused capacity a shard saves up (each bucket holds burst × rate)")
		latency  = flag.Duration("latency", 0, "fault: latency added to each request")
		jitter   = flag.Duration("jitter", 0, "fault: random extra latency up to this")
		ops      = flag.String("fault-ops", strings.Join(kinesisproxy.DefaultFaultOperations, ","), "operations faults apply to (comma-separated; * for all)")
		refresh  = flag.Duration("shard-refresh", 2*time.Second, "re-read a stream's shards from the emulator when its map is older than this")
		lifetime = flag.Duration("subscription-lifetime", kinesisproxy.AWSSubscriptionLifetime, "end each SubscribeToShard stream after this (AWS: 5m; shorter makes consumers re-subscribe often)")
		fanPoll  = flag.Duration("fan-out-poll", 50*time.Millisecond, "how often a subscription reads an idle shard from the emulator (the push latency; AWS: ~70ms)")
		seed     = flag.Uint64("seed", 1, "seed for the fault dice")
		verbose  = flag.Bool("v", false, "debug logging")
	)
	flag.Float64Var(&l.WriteBytesPerSec, "write-bytes-per-sec", kinesisproxy.AWSWriteBytesPerSec, "per-shard write limit in bytes (data + partition key) per second; negative: none")
	flag.Float64Var(&l.WriteRecordsPerSec, "write-records-per-sec", kinesisproxy.AWSWriteRecordsPerSec, "per-shard write limit in records per second; negative: none")
	flag.Float64Var(&l.ReadCallsPerSec, "read-calls-per-sec", kinesisproxy.AWSReadCallsPerSec, "per-shard GetRecords calls per second; negative: none")
	flag.Float64Var(&l.ReadBytesPerSec, "read-bytes-per-sec", kinesisproxy.AWSReadBytesPerSec, "per-shard read limit in bytes per second; negative: none")
	flag.Float64Var(&l.SubscribeCallsPerSec, "subscribe-calls-per-sec", kinesisproxy.AWSSubscribeCallsPerSec, "SubscribeToShard calls per second per consumer and shard; negative: none")
	flag.Float64Var(&l.FanOutBytesPerSec, "fan-out-bytes-per-sec", kinesisproxy.AWSFanOutBytesPerSec, "bytes pushed per second per consumer and shard (enhanced fan-out); negative: none")
	flag.Float64Var(&f.ErrorRate, "error-rate", 0, "fault: probability of ProvisionedThroughputExceededException (per entry for PutRecords)")
	flag.Float64Var(&f.Status500Rate, "status500-rate", 0, "fault: probability of a 500 InternalFailure")
	flag.Float64Var(&f.DropRate, "drop-rate", 0, "fault: probability the connection is closed before forwarding")
	flag.Float64Var(&f.DropAfterRate, "drop-after-rate", 0, "fault: probability the connection is closed after the emulator handled the request")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	l.Burst = kinesisproxy.Duration(*burst)
	switch *limits {
	case "aws":
	case "none":
		l = kinesisproxy.NoLimits()
	default:
		return fmt.Errorf("-limits must be aws or none, not %q", *limits)
	}
	f.Latency, f.Jitter = kinesisproxy.Duration(*latency), kinesisproxy.Duration(*jitter)
	f.Operations = strings.Split(*ops, ",")
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	p, err := kinesisproxy.New(kinesisproxy.Config{
		Upstream: *upstream, Limits: l, Faults: f, ShardRefreshInterval: *refresh, Seed: *seed, Logger: logger,
		SubscriptionLifetime: *lifetime, FanOutPoll: *fanPoll,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("serving", "listen", ln.Addr().String(), "upstream", *upstream, "limits", p.Limits(), "faults", p.Faults())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st := p.Stats()
	logger.Info("stopped", "put_entries", st.PutEntries, "put_entries_throttled", st.PutEntriesThrottled,
		"get_records_calls", st.GetRecordsCalls, "get_records_throttled", st.GetRecordsThrottled,
		"subscriptions", st.Subscriptions, "fan_out_records", st.FanOutRecords)
	return nil
}
