//go:build unix

package event

import "syscall"

// processCPU is the process's user+system CPU time in ns. Benchmarks report
// CPU per event besides wall time because this machine is shared: other load
// stretches wall time far more than it stretches the CPU an event costs.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
