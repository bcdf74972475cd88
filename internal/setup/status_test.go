package setup

import "testing"

func TestStatusString(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		want string
	}{
		{Status{Kind: "stream", Name: "s", Created: true, Detail: "provisioned, 4 open shards, ACTIVE"}, "created stream s (provisioned, 4 open shards, ACTIVE)"},
		{Status{Kind: "bucket", Name: "b"}, "found   bucket b"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
