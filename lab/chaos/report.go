package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the verdict table, the examples of what failed, and a
// summary of the run and the faults injected.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "\nchaos run of %s (seed %d): load %s, elapsed %s\n", r.Started.Format(time.RFC3339), r.Seed,
		r.LoadDuration.Round(time.Second), r.Elapsed.Round(time.Second))
	open, closed := 0, 0
	for _, s := range r.Shards {
		if s.Open {
			open++
		} else {
			closed++
		}
	}
	fmt.Fprintf(w, "stream %s: %d shards (%d open, %d closed), %d user records: %d valid events (%d of them copies from retried calls, skipped; %d copies out of the window's reach, kept), %d bad\n\n",
		r.Stream, len(r.Shards), open, closed, r.Records, r.Valid, r.Duplicates, r.CopiesLeft, r.Bad)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "check\texpected\tgot\tresult")
	fmt.Fprintln(tw, "-----\t--------\t---\t------")
	for _, c := range r.Checks {
		res := "PASS"
		if !c.OK {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Expected, c.Got, res)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Checks {
		if len(c.Examples) > 0 {
			fmt.Fprintf(w, "\n%s:\n  %s\n", c.Name, strings.Join(c.Examples, "\n  "))
		}
	}
	f := &r.Faults
	fmt.Fprintf(w, "\nfaults injected: kill -9 %s; processes started %s; second process beside the first %s; splits %d, merges %d\n",
		perApp(f.Kills), perApp(f.Starts), perApp(f.Concurrent), f.Splits, f.Merges)
	if f.ProxyRestarts > 0 || f.ProxyThrottled > 0 {
		fmt.Fprintf(w, "fault proxy: %d throttled (shard limits + injected), %d HTTP 500s, %d dropped connections (%d after the write), %d restarts\n",
			f.ProxyThrottled, f.Proxy500s, f.ProxyDropped, f.ProxyDroppedAfter, f.ProxyRestarts)
	}
	fmt.Fprintf(w, "seen by the consumers: %.0f GetRecords/GetShardIterator errors (%.0f throttled), %.0f lease takes, %.0f leases lost\n",
		f.GetErrors, f.Throttled, f.LeaseTakes, f.LeasesLost)
	if f.Subscriptions > 0 {
		fmt.Fprintf(w, "enhanced fan-out: %.0f subscriptions, %.0f failed or broken (each re-subscribed)\n", f.Subscriptions, f.SubscribeErrors)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "\nchaos: %s\n", verdict)
	return err
}

func perApp(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	total := 0
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		total += m[k]
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
