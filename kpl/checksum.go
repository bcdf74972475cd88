package kpl

import (
	"crypto/md5"
	"runtime"
	"sync"

	"github.com/klauspost/cpuid/v2"
	md5simd "github.com/minio/md5-simd"
)

// Verifying an aggregate's MD5 was 11% of the archive's CPU on KPL-aggregated
// records (crypto/md5 does ~680 MB/s on one core, and every byte of every
// aggregate is hashed). MD5 is serial within one message, but the aggregates
// of a GetRecords answer are independent: md5-simd computes up to 8 (AVX2)
// or 16 (AVX-512) of them at once on one core, and on this machine's AVX2
// it took 2-3× less CPU than crypto/md5 for an answer of 15 KB aggregates
// (BenchmarkVerifyChecksums). Without AVX2 (arm64, where the Lambda
// functions run by default) md5-simd would only hand each message to
// crypto/md5 on another goroutine: there they are hashed one by one here.

// md5Server computes the MD5 of several messages at once; started by the
// first VerifyChecksums call with enough aggregates, kept for the process.
var md5Server = sync.OnceValue(md5simd.NewServer)

// hashers are the process's idle md5-simd hashers (each registered with
// md5Server), so that a call does not register new ones.
var hashers = make(chan md5simd.Hasher, 64)

// lanes reports whether md5-simd computes several checksums at once here.
var lanes = runtime.GOARCH == "amd64" && cpuid.CPU.Supports(cpuid.AVX2)

// minParallel is the least number of aggregates hashed in parallel: below
// it, md5-simd computes lane by lane anyway and the hand-off costs more.
const minParallel = 3

// maxLanes is how many aggregates a call hashes at a time.
const maxLanes = 16

// VerifyChecksums sets ok[i] to whether datas[i] is an aggregate (IsAggregated)
// whose MD5 matches its protobuf message, computing several checksums at once
// on one core. An aggregate it finds good can be de-aggregated with
// AppendVerified, which does not hash it again. ok must be at least as long
// as datas. Safe for concurrent use.
func VerifyChecksums(datas [][]byte, ok []bool) {
	ok = ok[:len(datas)]
	clear(ok)
	var buf [maxLanes]int
	idx := buf[:0]
	for i, d := range datas {
		if !IsAggregated(d) {
			continue
		}
		if idx = append(idx, i); len(idx) == maxLanes {
			verifyLanes(datas, idx, ok)
			idx = idx[:0]
		}
	}
	verifyLanes(datas, idx, ok)
}

// verifyLanes verifies the aggregates datas[i] of the indexes idx, at once when
// there are enough of them and the CPU has the lanes.
func verifyLanes(datas [][]byte, idx []int, ok []bool) {
	if len(idx) < minParallel || !lanes {
		for _, i := range idx {
			ok[i] = checksumOK(datas[i])
		}
		return
	}
	var wg sync.WaitGroup
	for _, i := range idx[1:] {
		wg.Go(func() { ok[i] = simdChecksumOK(datas[i]) })
	}
	ok[idx[0]] = simdChecksumOK(datas[idx[0]])
	wg.Wait()
}

// checksumOK reports whether the aggregate data's MD5 matches, with crypto/md5.
func checksumOK(data []byte) bool {
	msg := data[len(Magic) : len(data)-md5.Size]
	return md5.Sum(msg) == [md5.Size]byte(data[len(data)-md5.Size:])
}

// simdChecksumOK is checksumOK on a hasher of md5Server.
func simdChecksumOK(data []byte) bool {
	var h md5simd.Hasher
	select {
	case h = <-hashers:
	default:
		h = md5Server().NewHash()
	}
	h.Reset()
	h.Write(data[len(Magic) : len(data)-md5.Size])
	var sum [md5.Size]byte
	h.Sum(sum[:0])
	select {
	case hashers <- h:
	default:
		h.Close()
	}
	return sum == [md5.Size]byte(data[len(data)-md5.Size:])
}
