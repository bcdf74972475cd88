// Command clickstream-lab is the test bench of the Clickstream pipeline, kept
// apart from the product: `bench` measures the whole pipeline end to end and
// `chaos` runs it under faults and checks every output against the stream.
// Both start the product binary (clickstream) as child processes. Run
// `clickstream-lab --help`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli.Main(ctx, rootCommand(os.Stdout, os.Stderr), os.Args[1:], os.Stdout, os.Stderr))
}

func rootCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name: "clickstream-lab",
		Long: `The lab of the Clickstream pipeline: an end-to-end benchmark and a fault run.
Both start the product binary (--binary, default the clickstream next to this
one, else on PATH) for each component, on the stack that AWS_ENDPOINT_URL_*
point to (make up && source .local/env).

  make bench-e2e   # two bench runs behind AWS's shard limits → docs/BENCHMARKS.md
  make chaos       # 5 minutes of faults, then a pass/fail table (docs/CHAOS.md)`,
		Subs: []*cli.Command{
			benchCommand(stdout, stderr),
			benchArchiveCommand(stdout, stderr),
			chaosCommand(stdout, stderr),
		},
	}
}

func binaryFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "binary", "", "the clickstream binary started for each component (default: next to this one, else on PATH)")
}

// binaryAndClients resolves --binary (productBinary) and loads the AWS
// clients from the default chain: what every lab run starts with.
func binaryAndClients(ctx context.Context, binary string) (string, *awsx.Clients, error) {
	exe, err := productBinary(binary)
	if err != nil {
		return "", nil, err
	}
	c, err := awsx.Load(ctx)
	return exe, c, err
}

// productBinary resolves --binary: the flag's value, else clickstream in this
// executable's directory, else on PATH.
func productBinary(flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "clickstream")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("clickstream")
	if err != nil {
		return "", fmt.Errorf("find the clickstream binary: %w (build it with make build, or pass --binary)", err)
	}
	return filepath.Abs(p)
}
