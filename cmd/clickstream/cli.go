package main

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

// command is one node of the CLI tree. Leaves have run; inner nodes have subs.
type command struct {
	name  string
	args  string // usage of positional arguments, e.g. "USER"
	short string // one line for the parent's list
	long  string // paragraphs shown by --help
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, args []string) error
	subs  []*command
}

// errUsage marks errors caused by how the command was called; main prints the usage hint.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// execute finds the subcommand named by args, parses its flags (flags
// override CLICKSTREAM_* environment variables, which override defaults) and
// runs it.
func (c *command) execute(ctx context.Context, path []string, args []string, stdout, stderr io.Writer) error {
	path = append(path, c.name)
	if len(c.subs) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			c.printHelp(stdout, path, nil)
			if len(args) == 0 {
				return usageErr("%s needs a subcommand", strings.Join(path, " "))
			}
			return nil
		}
		for _, s := range c.subs {
			if s.name == args[0] {
				return s.execute(ctx, path, args[1:], stdout, stderr)
			}
		}
		return usageErr("unknown command %q for %s (see %s --help)", args[0], strings.Join(path, " "), strings.Join(path, " "))
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return usageErr("%v", err)
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
			return usageErr("%v (see %s --help)", err, strings.Join(path, " "))
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
	return c.run(ctx, positional)
}

// envName maps a flag to its environment variable: --metrics-addr → CLICKSTREAM_METRICS_ADDR.
func envName(flagName string) string {
	return "CLICKSTREAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v, ok := lookup(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

func (c *command) printHelp(w io.Writer, path []string, fs *flag.FlagSet) {
	full := strings.Join(path, " ")
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\n", full)
	} else {
		u := full + " [flags]"
		if c.args != "" {
			u += " " + c.args
		}
		fmt.Fprintf(w, "Usage: %s\n\n", u)
	}
	if c.long != "" {
		fmt.Fprintln(w, strings.TrimSpace(c.long))
		fmt.Fprintln(w)
	} else if c.short != "" {
		fmt.Fprintln(w, c.short)
		fmt.Fprintln(w)
	}
	if len(c.subs) > 0 {
		fmt.Fprintln(w, "Commands:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range c.subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.short)
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
		fmt.Fprintf(w, "        %s%s [%s]\n", usage, def, envName(n))
	}
	fmt.Fprintln(w, "\nAWS settings (region, credentials, endpoints such as AWS_ENDPOINT_URL_KINESIS)\ncome from the AWS SDK's default chain; `source .local/env` points them at the local stack.")
}

// stringList is a repeatable/comma-separated flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
