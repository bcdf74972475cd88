package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// checksumCases are aggregates of many sizes (across MD5's 64-byte blocks
// and md5-simd's 32 KiB buffers) among plain records and aggregates whose
// checksum or message was changed after they were built.
func checksumCases(t testing.TB) (datas [][]byte, want []bool) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 70 {
		var data []byte
		switch i % 7 {
		case 0: // a plain record, empty or not
			data = make([]byte, rng.IntN(300))
			good := aggregate(sampleRecords(rng, 2))
			if i%2 == 0 {
				data = good[:len(Magic)-1] // a prefix of the magic is no aggregate
			}
			datas, want = append(datas, data), append(want, false)
			continue
		case 1: // an empty aggregate: the checksum of no bytes
			data = frame(nil)
		case 2: // exactly 32 KiB of message, then one byte more
			data = frame(bytes.Repeat([]byte{byte(i)}, 32<<10+i%2))
		default:
			data = aggregate(sampleRecords(rng, 1+rng.IntN(300)))
		}
		ok := true
		switch rng.IntN(5) {
		case 0:
			data[len(data)-1-rng.IntN(md5.Size)] ^= 1 << rng.IntN(8) // the checksum
			ok = false
		case 1:
			if len(data) > Overhead {
				data[len(Magic)+rng.IntN(len(data)-Overhead)] ^= 1 << rng.IntN(8) // the message
				ok = false
			}
		}
		datas, want = append(datas, data), append(want, ok)
	}
	return datas, want
}

func TestVerifyChecksums_MatchesCryptoMD5ForEachAggregate(t *testing.T) {
	datas, want := checksumCases(t)
	// Every slice length: lanes of 1, 2 (hashed one by one), 3 and more
	// (in parallel), a full 16 and what is left after it.
	for _, n := range []int{0, 1, 2, 3, 5, 16, 17, 40, len(datas)} {
		ok := make([]bool, n+1)
		ok[n] = true // beyond datas: untouched
		for i := range n {
			ok[i] = !want[i] // stale values are overwritten
		}
		VerifyChecksums(datas[:n], ok)
		for i := range n {
			if ok[i] != want[i] {
				t.Fatalf("n=%d: record %d (%d bytes, aggregated %v): ok = %v, want %v", n, i, len(datas[i]), IsAggregated(datas[i]), ok[i], want[i])
			}
		}
		if !ok[n] {
			t.Fatalf("n=%d: wrote beyond the records", n)
		}
	}
}

func TestVerifyChecksums_ConcurrentCallersEachGetTheirOwnAnswers(t *testing.T) {
	datas, want := checksumCases(t)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			ok := make([]bool, len(datas))
			for range 20 {
				VerifyChecksums(datas, ok)
				for i := range datas {
					if ok[i] != want[i] {
						errs <- fmt.Errorf("caller %d, record %d: ok = %v, want %v", g, i, ok[i], want[i])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendVerified_TrustsTheChecksumButNotTheMessage(t *testing.T) {
	recs := sampleRecords(rand.New(rand.NewPCG(5, 6)), 20)
	data := aggregate(recs)
	got, err := AppendVerified(nil, data, "pk")
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, recs)

	// It does not hash again: a checksum VerifyChecksums would have refused
	// goes unnoticed (AppendDeaggregated still refuses it)...
	badSum := bytes.Clone(data)
	badSum[len(badSum)-1] ^= 1
	if _, err := AppendVerified(nil, badSum, "pk"); err != nil {
		t.Fatalf("AppendVerified hashed the aggregate again: %v", err)
	}
	if _, err := AppendDeaggregated(nil, badSum, "pk"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AppendDeaggregated: %v, want ErrCorrupt", err)
	}
	// ...but the message is still read strictly.
	if _, err := AppendVerified(nil, frame([]byte{0x1a, 0x05, 0x08}), "pk"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a truncated message: %v, want ErrCorrupt", err)
	}
}

// BenchmarkVerifyChecksums: the aggregates of a 1 MiB GetRecords answer of
// the producer's ~15 KB aggregates, hashed one by one with crypto/md5 and by
// VerifyChecksums. Run it with -cpu 1: ns/op is then the CPU it costs,
// md5-simd's server goroutine included.
func BenchmarkVerifyChecksums(b *testing.B) {
	recs := benchRecords(44 * 64)
	var datas [][]byte
	size := 0
	for i := 0; i < len(recs); i += 44 {
		datas = append(datas, aggregate(recs[i:i+44]))
		size += len(datas[len(datas)-1])
	}
	ok := make([]bool, len(datas))
	b.Run("crypto-md5", func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			for i, d := range datas {
				ok[i] = checksumOK(d)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			VerifyChecksums(datas, ok)
		}
	})
	for i := range ok {
		if !ok[i] {
			b.Fatalf("aggregate %d refused", i)
		}
	}
}
