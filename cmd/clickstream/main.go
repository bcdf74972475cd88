// Command clickstream is the single binary of the Clickstream pipeline: it
// creates resources, runs the HTTP collector, the consumers and the read API,
// generates load, and reads results from the terminal. Run `clickstream --help`.
package main

import (
	"context"
	"fmt"
	"github.com/clickstream-go/clickstream/internal/cli"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Main(ctx, rootCommand(stdout, stderr), args, stdout, stderr)
}

func rootCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name: "clickstream",
		Long: `Clickstream moves click, impression and access-log events from apps and servers
through a partitioned Kinesis stream (partition key = user id) into three outputs:
a Parquet archive in S3, per-user click vectors in DynamoDB, and minute-window
metrics with a dashboard and alerts.

  producers (library, collector, loadgen) → Kinesis → consumers (archive, vectors, metrics) → S3 / DynamoDB

Local use: make up && source .local/env && clickstream setup`,
		Subs: []*cli.Command{
			setupCommand(stdout),
			collectorCommand(stderr),
			loadgenCommand(stdout, stderr),
			consumeCommand(stderr),
			apiCommand(stderr),
			vectorsCommand(stdout),
			metricsCommand(stdout),
			archiveCommand(stdout),
			streamCommand(stdout),
			versionCommand(stdout),
		},
	}
}

func versionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Short: "print the version",
		Run: func(ctx context.Context, args []string) error {
			v := version
			if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			fmt.Fprintln(stdout, "clickstream", v)
			return nil
		},
	}
}

// newLogger returns the process logger: text on stderr, or JSON with --log-format=json.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, cli.UsageErr("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, cli.UsageErr("--log-format must be text or json, not %q", format)
	}
}
