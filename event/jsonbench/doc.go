// Package jsonbench is the measurement behind event's choice of JSON decoder
// (see ../BENCHMARKS.md). It is its own module so the candidate libraries stay
// out of the main go.mod. Every candidate implements the same contract work
// (unknown fields kept, ts as string or number, null as absent, typed errors)
// on the same corpus as event's BenchmarkDecode:
//
//	cd event/jsonbench && go test -run '^$' -bench . -cpu 1 -count 5
package jsonbench
