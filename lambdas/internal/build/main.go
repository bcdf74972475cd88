// Command build makes the Lambda deployment zips (what `make lambdas` runs):
// for each function it builds its main — lambdas/consumer for each
// application of consumers/apps (stamped -X main.function=NAME),
// lambdas/collector for the collector — as the executable "bootstrap"
// for provided.al2023 — GOOS=linux, GOARCH=arm64 (or -arch), CGO_ENABLED=0,
// -trimpath, -buildvcs=false, -tags lambda.norpc, -ldflags "-s -w -X
// main.version=VERSION" — and writes dist/lambda-NAME.zip holding only
// bootstrap, with a fixed modification time and mode, so building the same
// source twice gives identical bytes (and Terraform's source_code_hash only
// changes when the code does). -check builds everything twice into
// temporary directories and fails unless the zips are byte-identical.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/lambdas/internal/lambdazip"
)

// functions are the Lambda functions, built in this order: one per
// application, then the collector and the read API.
var functions = append(apps.Names(), "collector", "readapi")

// mainOf is the package a function is built from, and its -X stamps.
func mainOf(name string) (pkg, ldflags string) {
	if name == "collector" || name == "readapi" {
		return "./lambdas/" + name, ""
	}
	return "./lambdas/consumer", " -X main.function=" + name
}

func main() {
	var (
		out     = flag.String("out", "dist", "directory the zips are written to")
		version = flag.String("version", "dev", "version stamped into main.version")
		arch    = flag.String("arch", "arm64", "GOARCH: arm64 (infra default) or amd64 (lambda_architecture = x86_64)")
		check   = flag.Bool("check", false, "build twice into temporary directories and compare the bytes (reproducibility)")
		gobin   = flag.String("go", "go", "the go command")
	)
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		names = functions
	}
	for _, n := range names {
		if !slices.Contains(functions, n) {
			fmt.Fprintf(os.Stderr, "build: unknown function %q (choose from %s)\n", n, strings.Join(functions, ", "))
			os.Exit(2)
		}
	}
	ctx := context.Background()
	b := builder{goCmd: *gobin, version: *version, arch: *arch}
	if *check {
		if err := b.check(ctx, names); err != nil {
			fmt.Fprintln(os.Stderr, "lambdas:", err)
			os.Exit(1)
		}
		return
	}
	if err := b.buildAll(ctx, *out, names); err != nil {
		fmt.Fprintln(os.Stderr, "lambdas:", err)
		os.Exit(1)
	}
}

type builder struct {
	goCmd, version, arch string
}

func (b builder) buildAll(ctx context.Context, out string, names []string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		zipPath := filepath.Join(out, "lambda-"+name+".zip")
		if err := b.build(ctx, name, zipPath); err != nil {
			return err
		}
		st, err := os.Stat(zipPath)
		if err != nil {
			return err
		}
		sum, err := fileSHA256(zipPath)
		if err != nil {
			return err
		}
		fmt.Printf("%-28s %9d bytes  sha256 %x\n", zipPath, st.Size(), sum)
	}
	return nil
}

// build compiles function name's main and zips it into zipPath.
func (b builder) build(ctx context.Context, name, zipPath string) error {
	tmp, err := os.MkdirTemp("", "lambda-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bootstrap")
	pkg, stamps := mainOf(name)
	cmd := exec.CommandContext(ctx, b.goCmd, "build", "-trimpath", "-buildvcs=false", "-tags", "lambda.norpc",
		"-ldflags", "-s -w -buildid= -X main.version="+b.version+stamps, "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.arch, "GOFLAGS=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := lambdazip.Write(&buf, []lambdazip.File{{Name: "bootstrap", Data: data, Executable: true}}); err != nil {
		return fmt.Errorf("zip %s: %w", name, err)
	}
	// Write then rename, so a failed build never leaves a half zip that
	// Terraform would deploy.
	part := zipPath + ".part"
	if err := os.WriteFile(part, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(part, zipPath)
}

func (b builder) check(ctx context.Context, names []string) error {
	var dirs [2]string
	for i := range dirs {
		d, err := os.MkdirTemp("", "lambdas-check-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dirs[i] = d
		if err := b.buildAll(ctx, d, names); err != nil {
			return err
		}
	}
	var diff []string
	for _, name := range names {
		f := "lambda-" + name + ".zip"
		x, err := os.ReadFile(filepath.Join(dirs[0], f))
		if err != nil {
			return err
		}
		y, err := os.ReadFile(filepath.Join(dirs[1], f))
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			diff = append(diff, f)
		}
	}
	if len(diff) > 0 {
		return errors.New("not reproducible: two builds of " + strings.Join(diff, ", ") + " differ")
	}
	fmt.Println("reproducible: two builds gave identical zips")
	return nil
}

func fileSHA256(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(b)
	return s[:], nil
}
