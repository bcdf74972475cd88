//go:build !unix

package event

func processCPU() int64 { return 0 }
