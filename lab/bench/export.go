package bench

import (
	"context"
	"syscall"
	"time"
)

// Process is a component started as a child process of the clickstream
// binary, exported for the chaos run (lab/chaos), which kills and
// restarts consumers the way the benchmark starts them.
type Process struct{ c *component }

// StartProcess runs `binary args...` with its output in logDir/name.log;
// addr is where it serves /metrics and /healthz.
func StartProcess(binary, logDir, name, addr string, env []string, args ...string) (*Process, error) {
	c, err := startComponent(binary, logDir, name, addr, env, args...)
	if err != nil {
		return nil, err
	}
	return &Process{c: c}, nil
}

// FreeAddr returns a free 127.0.0.1 TCP address.
func FreeAddr() (string, error) { return freeAddr() }

// Name is the process's name (its log is LogPath).
func (p *Process) Name() string { return p.c.name }

// Addr serves /metrics and /healthz.
func (p *Process) Addr() string { return p.c.addr }

// LogPath is the file receiving the process's output.
func (p *Process) LogPath() string { return p.c.logPath }

// Pid is the process id.
func (p *Process) Pid() int { return p.c.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.c.exited }

// WaitHealthy polls /healthz until it answers 200, the process exits or timeout.
func (p *Process) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	return p.c.waitHealthy(ctx, timeout)
}

// Stop sends SIGTERM and waits up to grace for a graceful exit, then kills.
func (p *Process) Stop(grace time.Duration) error { return p.c.stop(grace) }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	select {
	case <-p.c.exited:
		return
	default:
	}
	p.c.cmd.Process.Signal(syscall.SIGKILL)
	<-p.c.exited
}

// Sum scrapes the process's /metrics and adds up the series of one family
// whose labels match every name=value pair in match.
func (p *Process) Sum(ctx context.Context, family string, match ...string) (float64, error) {
	m, err := p.c.scrape(ctx)
	if err != nil {
		return 0, err
	}
	return m.sum(family, match...), nil
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string { return tail(p.c.logPath, n) }
