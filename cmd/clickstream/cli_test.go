package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

// walk visits every command of the tree with its path.
func walk(c *command, path []string, fn func(path []string, c *command)) {
	path = append(path, c.name)
	fn(path, c)
	for _, s := range c.subs {
		walk(s, path, fn)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	var out, errw bytes.Buffer
	root := rootCommand(&out, &errw)
	walk(root, nil, func(path []string, c *command) {
		if c != root && c.short == "" {
			t.Errorf("%s: no short description", strings.Join(path, " "))
		}
		out.Reset()
		args := append(append([]string{}, path[1:]...), "--help")
		if code := run(context.Background(), args, &out, &errw); code != 0 {
			t.Errorf("%v: exit %d, stderr %s", args, code, errw.String())
		}
		if !strings.HasPrefix(out.String(), "Usage: "+strings.Join(path, " ")) {
			t.Errorf("%v: help does not start with its usage line:\n%s", args, out.String())
		}
		if c.run != nil && c.flags != nil && !strings.Contains(out.String(), "CLICKSTREAM_") {
			t.Errorf("%v: help does not name the environment variables of its flags", args)
		}
	})
}

func TestUnknownCommandAndFlagAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"setup", "--nope"}, {"consume"}, {"consume", "nope"}, {"vectors", "get"}, {"metrics", "query", "access", "route"}} {
		var out, errw bytes.Buffer
		if code := run(context.Background(), args, &out, &errw); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errw.String())
		}
		if !strings.HasPrefix(errw.String(), "clickstream: ") || strings.Contains(errw.String(), "usage: ") || len(errw.String()) < 20 {
			t.Errorf("%v: unhelpful error %q", args, errw.String())
		}
	}
}

func TestFlagsAnywhereAndEnvironment(t *testing.T) {
	var got []string
	var owner, level string
	c := &command{
		name: "consume",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&owner, "owner", "default", "")
			fs.StringVar(&level, "log-level", "info", "")
		},
		run: func(ctx context.Context, args []string) error { got = args; return nil },
	}
	t.Setenv("CLICKSTREAM_LOG_LEVEL", "debug")
	t.Setenv("CLICKSTREAM_OWNER", "from-env")
	var out bytes.Buffer
	if err := c.execute(context.Background(), nil, []string{"archive", "--owner", "a", "vectors", "--", "--metrics"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "archive vectors --metrics" {
		t.Errorf("positional = %q", got)
	}
	if owner != "a" {
		t.Errorf("flag did not override the environment: owner = %q", owner)
	}
	if level != "debug" {
		t.Errorf("environment not applied: log-level = %q", level)
	}
	t.Setenv("CLICKSTREAM_OWNER", "")
	if err := c.execute(context.Background(), nil, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		t.Errorf("empty environment variable should set the empty value, got %q", owner)
	}
}

func TestBadEnvironmentValueIsUsageError(t *testing.T) {
	t.Setenv("CLICKSTREAM_RATE", "fast")
	var out, errw bytes.Buffer
	if code := run(context.Background(), []string{"loadgen"}, &out, &errw); code != 2 || !strings.Contains(errw.String(), "CLICKSTREAM_RATE") {
		t.Errorf("exit %d, stderr %q", code, errw.String())
	}
}

func TestMemoryLimit_BudgetPlusRoomUnlessSetOrOff(t *testing.T) {
	const budget = 128 << 20
	for _, tc := range []struct {
		name         string
		flag         int64
		env, archive bool
		want         int64
	}{
		{"archive, nothing set: budget + 160 MiB", 0, false, true, budget + 160<<20},
		{"no archive: none", 0, false, false, 0},
		{"GOMEMLIMIT set: the runtime's", 0, true, true, 0},
		{"explicit flag wins over GOMEMLIMIT", 300 << 20, true, true, 300 << 20},
		{"negative: off", -1, false, true, 0},
	} {
		if got := memoryLimit(tc.flag, tc.env, tc.archive, budget); got != tc.want {
			t.Errorf("%s: memoryLimit = %d, want %d", tc.name, got, tc.want)
		}
	}
}
