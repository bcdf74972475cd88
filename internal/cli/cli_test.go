package cli

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

func TestFlagsAnywhereAndEnvironment(t *testing.T) {
	var got []string
	var owner, level string
	c := &Command{
		Name: "consume",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&owner, "owner", "default", "")
			fs.StringVar(&level, "log-level", "info", "")
		},
		Run: func(ctx context.Context, args []string) error { got = args; return nil },
	}
	t.Setenv("CLICKSTREAM_LOG_LEVEL", "debug")
	t.Setenv("CLICKSTREAM_OWNER", "from-env")
	var out bytes.Buffer
	if err := c.Execute(context.Background(), nil, []string{"archive", "--owner", "a", "vectors", "--", "--metrics"}, &out, &out); err != nil {
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
	if err := c.Execute(context.Background(), nil, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		t.Errorf("empty environment variable should set the empty value, got %q", owner)
	}
}

func TestMain_ExitCodes(t *testing.T) {
	root := &Command{Name: "prog", Subs: []*Command{
		{Name: "ok", Short: "s", Run: func(context.Context, []string) error { return nil }},
		{Name: "bad", Short: "s", Run: func(context.Context, []string) error { return UsageErr("wrong %s", "call") }},
		{Name: "fail", Short: "s", Run: func(context.Context, []string) error { return context.DeadlineExceeded }},
		{Name: "stopped", Short: "s", Run: func(context.Context, []string) error { return context.Canceled }},
	}}
	for args, want := range map[string]int{"ok": 0, "bad": 2, "fail": 1, "stopped": 0, "nope": 2} {
		var out, errw bytes.Buffer
		if code := Main(context.Background(), root, []string{args}, &out, &errw); code != want {
			t.Errorf("%s: exit %d, want %d (stderr %q)", args, code, want, errw.String())
		}
		if want != 0 && !strings.HasPrefix(errw.String(), "prog: ") {
			t.Errorf("%s: stderr %q does not name the program", args, errw.String())
		}
	}
}
