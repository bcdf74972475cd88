//go:build race

package archive

// raceEnabled: under the race detector, zstd encoder set-up (megabytes of
// tables, re-made whenever sync.Pool drops one, which it does on purpose
// under -race) costs ~100x; logic tests then use snappy and fewer seeds.
const raceEnabled = true
