package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// component is one clickstream process the benchmark started.
type component struct {
	name string
	addr string // where /metrics and /healthz are served
	// pprofAddr serves /debug/pprof/ ("" when not profiled).
	pprofAddr string
	cmd       *exec.Cmd
	logPath   string
	exited    chan struct{}
	waitErr   error
}

// startComponent runs `binary args...` with its output in logDir/name.log.
func startComponent(binary, logDir, name, addr string, env []string, args ...string) (*component, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &component{name: name, addr: addr, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		f.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitHealthy polls /healthz until it answers 200, the process exits or timeout.
func (c *component) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited during start-up (%v); log: %s\n%s", c.name, c.waitErr, c.logPath, tail(c.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get("http://" + c.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy at %s within %s; log: %s\n%s", c.name, c.addr, timeout, c.logPath, tail(c.logPath, 20))
}

// stop sends SIGTERM and waits for a graceful exit, then kills.
func (c *component) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return c.exitErr()
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.exitErr()
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", c.name, grace)
	}
}

func (c *component) exitErr() error {
	if c.waitErr != nil {
		return fmt.Errorf("%s: %w; log: %s", c.name, c.waitErr, c.logPath)
	}
	return nil
}

// scrape reads the component's Prometheus metrics.
func (c *component) scrape(ctx context.Context) (metricSet, error) {
	return scrapeURL(ctx, "http://"+c.addr+"/metrics")
}

// metricSet is a scraped set of metric families.
type metricSet map[string]*dto.MetricFamily

func scrapeURL(ctx context.Context, url string) (metricSet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	fams, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return fams, nil
}

func parseMetrics(r io.Reader) (metricSet, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// sum adds the values of a counter or gauge family over the series whose
// labels match every name=value pair in match.
func (m metricSet) sum(name string, match ...string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var total float64
series:
	for _, s := range f.GetMetric() {
		for i := 0; i+1 < len(match); i += 2 {
			ok := false
			for _, l := range s.GetLabel() {
				if l.GetName() == match[i] && l.GetValue() == match[i+1] {
					ok = true
				}
			}
			if !ok {
				continue series
			}
		}
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Untyped != nil:
			total += s.Untyped.GetValue()
		}
	}
	return total
}

// awsCalls sums clickstream_aws_requests_total of a service over operations.
func (m metricSet) awsCalls(service string, ops ...string) float64 {
	var n float64
	for _, op := range ops {
		n += m.sum("clickstream_aws_requests_total", "service", service, "operation", op)
	}
	return n
}

// procStats is what /proc says about a process.
type procStats struct {
	CPUSeconds float64 // user + system
	PeakRSS    int64   // VmHWM, bytes
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func readProcStats(pid int) (procStats, error) {
	var st procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, errors.New("unexpected /proc stat format")
	}
	fields := strings.Fields(s[i+1:]) // fields[0] is field 3 (state)
	if len(fields) < 13 {
		return st, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	st.CPUSeconds = (utime + stime) / clockTicks
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			st.PeakRSS = kb << 10
		}
	}
	return st, sc.Err()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
