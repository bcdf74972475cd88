// Package cli is the command tree both binaries (clickstream and
// clickstream-lab) are built from: subcommands, flags anywhere among the
// arguments, every flag also read from a CLICKSTREAM_* environment variable,
// --help on every command, and usage errors that exit 2.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// Command is one node of the CLI tree. Leaves have Run; inner nodes have Subs.
type Command struct {
	Name  string
	Args  string // usage of positional arguments, e.g. "USER"
	Short string // one line for the parent's list
	Long  string // paragraphs shown by --help
	Flags func(fs *flag.FlagSet)
	Run   func(ctx context.Context, args []string) error
	Subs  []*Command
}

// ErrUsage marks errors caused by how the command was called; Main exits 2
// on them.
var ErrUsage = errors.New("usage")

// UsageErr is an error wrapping ErrUsage.
func UsageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// Main runs the command args name under root and returns the exit code: 0,
// 1 after an error, 2 after a usage error; errors go to stderr prefixed by
// root's name. An interrupted command (context.Canceled) exits 0.
func Main(ctx context.Context, root *Command, args []string, stdout, stderr io.Writer) int {
	err := root.Execute(ctx, nil, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %s\n", root.Name, strings.TrimPrefix(err.Error(), ErrUsage.Error()+": "))
		return 2
	case errors.Is(err, context.Canceled):
		return 0
	default:
		fmt.Fprintf(stderr, "%s: %v\n", root.Name, err)
		return 1
	}
}

// Execute finds the subcommand named by args, parses its flags (flags
// override CLICKSTREAM_* environment variables, which override defaults) and
// runs it.
func (c *Command) Execute(ctx context.Context, path []string, args []string, stdout, stderr io.Writer) error {
	path = append(path, c.Name)
	if len(c.Subs) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			c.printHelp(stdout, path, nil)
			if len(args) == 0 {
				return UsageErr("%s needs a subcommand", strings.Join(path, " "))
			}
			return nil
		}
		for _, s := range c.Subs {
			if s.Name == args[0] {
				return s.Execute(ctx, path, args[1:], stdout, stderr)
			}
		}
		return UsageErr("unknown command %q for %s (see %s --help)", args[0], strings.Join(path, " "), strings.Join(path, " "))
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return UsageErr("%v", err)
	}
	// Flags may come before, between or after positional arguments
	// (`consume archive vectors --owner a`); "--" ends the flags.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(stdout, path, fs)
				return nil
			}
			return UsageErr("%v (see %s --help)", err, strings.Join(path, " "))
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if n := len(rest) - len(left); n > 0 && rest[n-1] == "--" {
			positional = append(positional, left...)
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	return c.Run(ctx, positional)
}

// EnvName maps a flag to its environment variable: --metrics-addr → CLICKSTREAM_METRICS_ADDR.
func EnvName(flagName string) string {
	return "CLICKSTREAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag whose environment variable is set.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

func (c *Command) printHelp(w io.Writer, path []string, fs *flag.FlagSet) {
	full := strings.Join(path, " ")
	if len(c.Subs) > 0 {
		fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\n", full)
	} else {
		u := full + " [flags]"
		if c.Args != "" {
			u += " " + c.Args
		}
		fmt.Fprintf(w, "Usage: %s\n\n", u)
	}
	if c.Long != "" {
		fmt.Fprintln(w, strings.TrimSpace(c.Long))
		fmt.Fprintln(w)
	} else if c.Short != "" {
		fmt.Fprintln(w, c.Short)
		fmt.Fprintln(w)
	}
	if len(c.Subs) > 0 {
		fmt.Fprintln(w, "Commands:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range c.Subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.Short)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", full)
		return
	}
	if fs == nil {
		return
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Flags (each also read from the environment variable shown):")
	for _, n := range names {
		f := fs.Lookup(n)
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + n
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "        %s%s [%s]\n", usage, def, EnvName(n))
	}
	fmt.Fprintln(w, "\nAWS settings (region, credentials, endpoints such as AWS_ENDPOINT_URL_KINESIS)\ncome from the AWS SDK's default chain; `source .local/env` points them at the local stack.")
}

// StringList is a repeatable/comma-separated flag.
type StringList []string

func (s *StringList) String() string { return strings.Join(*s, ",") }

// Set adds the comma-separated values of v.
func (s *StringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
