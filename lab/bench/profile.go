package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/clickstream-go/clickstream/lab/proc"
)

// ProfileSummary is where one component's CPU time went while the profile
// was taken: the functions with the most flat (self) time.
type ProfileSummary struct {
	Component string
	Path      string        // the pprof file, for `go tool pprof`
	Duration  time.Duration // wall time profiled
	CPU       time.Duration // CPU time in the samples
	Top       []ProfileFunc // by flat time, descending
}

// ProfileFunc is one function's share of the profiled CPU time.
type ProfileFunc struct {
	Name      string
	Flat, Cum float64 // fractions of CPU
}

// fetchProfiles takes a CPU profile of every component with a pprof address
// at once, for d, and writes dir/NAME.cpu.pprof, then a heap profile,
// dir/NAME.heap.pprof. Failures are returned as
// messages for the report: a missing profile never fails the run.
func fetchProfiles(ctx context.Context, comps []*proc.Process, dir string, d time.Duration) (paths map[string]string, errs []string) {
	paths = map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range comps {
		if c.PprofAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, c.Name+".cpu.pprof")
			err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.PprofAddr, max(1, int(d/time.Second))), d, path)
			if err == nil {
				// The heap right after, for where the RSS goes.
				err = fetchProfile(ctx, "http://"+c.PprofAddr+"/debug/pprof/heap", 0, filepath.Join(dir, c.Name+".heap.pprof"))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("profile %s: %v", c.Name, err))
				return
			}
			paths[c.Name] = path
		}()
	}
	wg.Wait()
	sort.Strings(errs)
	return paths, errs
}

// fetchProfile GETs a profile that takes d to collect into path.
func fetchProfile(ctx context.Context, url string, d time.Duration, path string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// summarizeProfile reads a CPU profile and returns its n functions with the
// most flat time, like `go tool pprof -top`.
func summarizeProfile(component, path string, n int) (ProfileSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return ProfileSummary{}, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return ProfileSummary{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return summarize(component, path, p, n), nil
}

func summarize(component, path string, p *profile.Profile, n int) ProfileSummary {
	vi := len(p.SampleType) - 1 // cpu/nanoseconds is the last value of a Go CPU profile
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	flat, cum := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		seen := map[string]bool{}
		for li, loc := range s.Location {
			// Inlined functions come first within a location; the leaf is
			// the first line of the first location.
			for i, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				name := line.Function.Name
				if li == 0 && i == 0 {
					flat[name] += v
				}
				if !seen[name] {
					seen[name] = true
					cum[name] += v
				}
			}
		}
	}
	sum := ProfileSummary{Component: component, Path: path, Duration: time.Duration(p.DurationNanos), CPU: time.Duration(total)}
	if total == 0 {
		return sum
	}
	names := make([]string, 0, len(flat))
	for name := range flat {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if flat[names[i]] != flat[names[j]] {
			return flat[names[i]] > flat[names[j]]
		}
		return names[i] < names[j]
	})
	for _, name := range names[:min(n, len(names))] {
		sum.Top = append(sum.Top, ProfileFunc{Name: name, Flat: float64(flat[name]) / float64(total), Cum: float64(cum[name]) / float64(total)})
	}
	return sum
}
