package archive

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/delta"
)

// appendDeltaByteArray writes the bytes parquet-go's DELTA_BYTE_ARRAY
// encoder writes: for sequence numbers, ids, values sharing prefixes of
// every length (past 64 bytes parquet-go searches them another way),
// empty values, repeats, one value and none.
func TestAppendDeltaByteArray_IsParquetGos(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var sets [][][]byte
	seqs := make([][]byte, 3000)
	for i := range seqs {
		seqs[i] = fmt.Appendf(nil, "49590338271490256608559692538361571095921575%012d", r.Uint64N(1e12))
	}
	sets = append(sets, seqs, nil, [][]byte{[]byte("x")}, [][]byte{{}, {}, []byte("a"), {}})
	for range 200 {
		n := r.IntN(300)
		vals := make([][]byte, n)
		base := make([]byte, r.IntN(150))
		for i := range base {
			base[i] = byte('a' + r.IntN(3))
		}
		for i := range vals {
			v := append([]byte(nil), base[:r.IntN(len(base)+1)]...)
			for range r.IntN(20) {
				v = append(v, byte(r.IntN(256)))
			}
			if i > 0 && r.IntN(10) == 0 {
				v = vals[i-1] // a repeat
			}
			vals[i] = v
		}
		sets = append(sets, vals)
	}
	var w pqWriter
	c := pqColumn{pqLeaf: pqLeaf{kind: parquet.ByteArray, encoding: pqDeltaBytes}}
	for k, vals := range sets {
		var src []byte
		offs := []uint32{0}
		c.resetChunk()
		for _, v := range vals {
			src = append(src, v...)
			offs = append(offs, uint32(len(src)))
			c.str(string(v), 0, 0)
		}
		if c.size() < len(src) {
			t.Fatalf("set %d: page size %d for %d bytes of values", k, c.size(), len(src))
		}
		want, err := (&delta.ByteArrayEncoding{}).EncodeByteArray(nil, src, offs)
		if err != nil {
			t.Fatal(err)
		}
		prefix := []byte("page header")
		got, err := w.appendDeltaByteArray(append([]byte(nil), prefix...), &c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(prefix, want...)) {
			t.Fatalf("set %d (%d values): %d bytes, parquet-go's %d", k, len(vals), len(got)-len(prefix), len(want))
		}
	}
}

func TestCommonPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 100_000 {
		a := make([]byte, r.IntN(40))
		for i := range a {
			a[i] = byte(r.IntN(2))
		}
		b := append([]byte(nil), a[:r.IntN(len(a)+1)]...)
		for range r.IntN(20) {
			b = append(b, byte(r.IntN(2)))
		}
		want := 0
		for want < len(a) && want < len(b) && a[want] == b[want] {
			want++
		}
		if got := commonPrefix(a, b); got != want {
			t.Fatalf("commonPrefix(%v, %v) = %d, want %d", a, b, got, want)
		}
	}
}
