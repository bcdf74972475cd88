// Package proc runs the clickstream components of a lab run as child
// processes and reads them: health, Prometheus metrics, CPU time and peak
// RSS from /proc, logs. The benchmark and the chaos run share it.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

// Process is one clickstream process a lab run started.
type Process struct {
	Name string
	Addr string // where /metrics and /healthz are served
	// PprofAddr serves /debug/pprof/ ("" when not profiled).
	PprofAddr string
	Cmd       *exec.Cmd
	LogPath   string
	exited    chan struct{}
	waitErr   error
}

// Pid is the process id.
func (c *Process) Pid() int { return c.Cmd.Process.Pid }

// Exited is closed when the process has exited.
func (c *Process) Exited() <-chan struct{} { return c.exited }

// Kill sends SIGKILL and waits for the process to be gone.
func (c *Process) Kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.Cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// Sum scrapes the process's /metrics and adds up the series of one family
// whose labels match every name=value pair in match.
func (c *Process) Sum(ctx context.Context, family string, match ...string) (float64, error) {
	m, err := c.Scrape(ctx)
	if err != nil {
		return 0, err
	}
	return m.Sum(family, match...), nil
}

// Tail returns the last n lines of the process's log.
func (c *Process) Tail(n int) string { return Tail(c.LogPath, n) }

// FreeAddr returns a free 127.0.0.1 TCP address for a child process to
// listen on. The port is below the kernel's ephemeral range when it can be
// read: a port the kernel picks (":0") is one it also gives outgoing
// connections, and one did take it between the pick and the child's listen
// (a bench run failed with "address already in use"), since a run makes
// thousands of connections to the emulators.
func FreeAddr() (string, error) {
	if lo, ok := ephemeralLow(); ok && lo > minFixedPort+1000 {
		for range 100 {
			port := minFixedPort + rand.IntN(lo-minFixedPort)
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err == nil {
				ln.Close()
				return ln.Addr().String(), nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// minFixedPort is the lowest port FreeAddr picks: above the well-known and
// most registered services' ports.
const minFixedPort = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux).
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	return lo, err == nil
}

// Start runs `binary args...` with its output in logDir/name.log; addr is
// where it will serve /metrics and /healthz.
func Start(binary, logDir, name, addr string, env []string, args ...string) (*Process, error) {
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
	c := &Process{Name: name, Addr: addr, Cmd: cmd, LogPath: logPath, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		f.Close()
		close(c.exited)
	}()
	return c, nil
}

// WaitHealthy polls /healthz until it answers 200, the process exits or timeout.
func (c *Process) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited during start-up (%v); log: %s\n%s", c.Name, c.waitErr, c.LogPath, Tail(c.LogPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get("http://" + c.Addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy at %s within %s; log: %s\n%s", c.Name, c.Addr, timeout, c.LogPath, Tail(c.LogPath, 20))
}

// Stop sends SIGTERM and waits for a graceful exit, then kills.
func (c *Process) Stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return c.exitErr()
	default:
	}
	c.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.exitErr()
	case <-time.After(grace):
		c.Cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", c.Name, grace)
	}
}

func (c *Process) exitErr() error {
	if c.waitErr != nil {
		return fmt.Errorf("%s: %w; log: %s", c.Name, c.waitErr, c.LogPath)
	}
	return nil
}

// Scrape reads the process's Prometheus metrics.
func (c *Process) Scrape(ctx context.Context) (Metrics, error) {
	return ScrapeURL(ctx, "http://"+c.Addr+"/metrics")
}

// Metrics is a scraped set of metric families.
type Metrics map[string]*dto.MetricFamily

// ScrapeURL reads the Prometheus metrics served at url.
func ScrapeURL(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed: on loopback gzip only spends the measured process's
	// CPU (frequent scrapes showed up in its profile).
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	fams, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return fams, nil
}

// ParseMetrics parses the Prometheus text format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Sum adds the values of a counter or gauge family over the series whose
// labels match every name=value pair in match.
func (m Metrics) Sum(name string, match ...string) float64 {
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

// AWSCalls sums clickstream_aws_requests_total of a service over operations.
func (m Metrics) AWSCalls(service string, ops ...string) float64 {
	var n float64
	for _, op := range ops {
		n += m.Sum("clickstream_aws_requests_total", "service", service, "operation", op)
	}
	return n
}

// Stats is what /proc says about a process.
type Stats struct {
	CPUSeconds float64 // user + system
	PeakRSS    int64   // VmHWM, bytes
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ReadStats reads a process's CPU time and peak RSS from /proc.
func ReadStats(pid int) (Stats, error) {
	var st Stats
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

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
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
