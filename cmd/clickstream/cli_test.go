package main

import (
	"bytes"
	"context"
	"github.com/clickstream-go/clickstream/internal/cli"
	"strings"
	"testing"
)

// walk visits every command of the tree with its path.
func walk(c *cli.Command, path []string, fn func(path []string, c *cli.Command)) {
	path = append(path, c.Name)
	fn(path, c)
	for _, s := range c.Subs {
		walk(s, path, fn)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	var out, errw bytes.Buffer
	root := rootCommand(&out, &errw)
	walk(root, nil, func(path []string, c *cli.Command) {
		if c != root && c.Short == "" {
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
		if c.Run != nil && c.Flags != nil && !strings.Contains(out.String(), "CLICKSTREAM_") {
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

func TestBadEnvironmentValueIsUsageError(t *testing.T) {
	t.Setenv("CLICKSTREAM_RATE", "fast")
	var out, errw bytes.Buffer
	if code := run(context.Background(), []string{"loadgen"}, &out, &errw); code != 2 || !strings.Contains(errw.String(), "CLICKSTREAM_RATE") {
		t.Errorf("exit %d, stderr %q", code, errw.String())
	}
}

func TestMemoryLimit_FollowsTheBuffersUnlessSetOrOff(t *testing.T) {
	const budget = 128 << 20
	for _, tc := range []struct {
		name         string
		flag         int64
		env, archive bool
		want         int64
		follow       bool
	}{
		{"archive, nothing set: follows the buffers, up to budget + 160 MiB", 0, false, true, budget + 160<<20, true},
		{"no archive: none", 0, false, false, 0, false},
		{"GOMEMLIMIT set: the runtime's", 0, true, true, 0, false},
		{"explicit flag wins over GOMEMLIMIT", 300 << 20, true, true, 300 << 20, false},
		{"negative: off", -1, false, true, 0, false},
	} {
		if got, follow := memoryLimit(tc.flag, tc.env, tc.archive, budget); got != tc.want || follow != tc.follow {
			t.Errorf("%s: memoryLimit = %d, %v; want %d, %v", tc.name, got, follow, tc.want, tc.follow)
		}
	}
}
