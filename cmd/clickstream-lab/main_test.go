package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/clickstream-go/clickstream/internal/cli"
)

func TestEveryLabCommandHasHelpAndTheBinaryFlag(t *testing.T) {
	var out, errw bytes.Buffer
	root := rootCommand(&out, &errw)
	for _, c := range root.Subs {
		out.Reset()
		if code := cli.Main(context.Background(), root, []string{c.Name, "--help"}, &out, &errw); code != 0 {
			t.Fatalf("%s --help: exit %d: %s", c.Name, code, errw.String())
		}
		if !strings.HasPrefix(out.String(), "Usage: clickstream-lab "+c.Name) || !strings.Contains(out.String(), "--binary") {
			t.Errorf("%s --help:\n%s", c.Name, out.String())
		}
	}
}

func TestProductBinary_FlagWins(t *testing.T) {
	if p, err := productBinary("bin/clickstream"); err != nil || !strings.HasSuffix(p, "/bin/clickstream") {
		t.Fatalf("productBinary = %q, %v", p, err)
	}
}
