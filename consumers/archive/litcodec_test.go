package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
)

// randomDigits are what DELTA_BYTE_ARRAY leaves of Kinesis sequence
// numbers: ~20-digit suffixes, with their lengths in front.
func randomDigits(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		b = strconv.AppendUint(b, r.Uint64(), 10)
	}
	return b[:n]
}

// frameBlocks walks a zstd frame written by literalsCodec.encode and
// returns the type of each block, failing unless each compressed block
// holds Huffman-coded literals and no sequences.
func frameBlocks(t *testing.T, f []byte) []int {
	t.Helper()
	if len(f) < 9 || binary.LittleEndian.Uint32(f) != zstdMagic || f[4] != 2<<6|1<<5 {
		t.Fatalf("not a single-segment frame with a 4-byte content size: % x", f[:min(len(f), 9)])
	}
	var types []int
	for b := f[9:]; ; {
		if len(b) < 3 {
			t.Fatalf("block header cut: % x", b)
		}
		h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		last, typ, size := h&1 == 1, int(h>>1&3), int(h>>3)
		b = b[3:]
		types = append(types, typ)
		content := size
		if typ == zstdBlockRLE {
			content = 1
		}
		if len(b) < content {
			t.Fatalf("block of %d bytes, %d left", content, len(b))
		}
		if typ == zstdBlockCompr {
			blk := b[:content]
			if blk[0]&3 != zstdLitsCompr {
				t.Fatalf("literals of type %d", blk[0]&3)
			}
			var n, bits int
			switch blk[0] >> 2 & 3 {
			case 0, 1:
				n, bits = 3, 10
			case 2:
				n, bits = 4, 14
			case 3:
				n, bits = 5, 18
			}
			var hv uint64
			for i := n - 1; i >= 0; i-- {
				hv = hv<<8 | uint64(blk[i])
			}
			comp := int(hv >> (4 + bits) & (1<<bits - 1))
			if n+comp+1 != len(blk) || blk[len(blk)-1] != 0 {
				t.Fatalf("compressed block of %d bytes: literals header %d + %d, then % x; want one 0 (no sequences)",
					len(blk), n, comp, blk[min(n+comp, len(blk)):])
			}
		}
		b = b[content:]
		if last {
			if len(b) != 0 {
				t.Fatalf("%d bytes after the last block", len(b))
			}
			return types
		}
	}
}

// literalsUnderTest returns the zstd codecs, the sequence numbers' one,
// and a standard zstd decoder to read its frames.
func literalsUnderTest(tb testing.TB) (codecs, *literalsCodec, *kzstd.Decoder) {
	tb.Helper()
	cs, err := codecsFor(CompressionZstd, 512<<10)
	if err != nil {
		tb.Fatal(err)
	}
	dec, err := kzstd.NewReader(nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(dec.Close)
	return cs, cs.seqs.(*literalsCodec), dec
}

// Every page comes back as it was from a standard zstd decoder, whichever
// way it was coded; random digits are Huffman-coded, block by block.
func TestLiteralsCodec_RoundTrips(t *testing.T) {
	cs, c, dec := literalsUnderTest(t)
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	var counters []byte
	for i := range 40000 {
		counters = fmt.Appendf(counters, "%d,", 1_000_000+i)
	}
	cases := []struct {
		name  string
		in    []byte
		types []int // the blocks of the literals frame; nil: not checked
	}{
		{"empty", nil, []int{zstdBlockRaw}},
		{"one byte", []byte{'7'}, []int{zstdBlockRaw}},
		{"31 digits", randomDigits(r, 31), []int{zstdBlockRaw}},
		{"32 digits", randomDigits(r, 32), []int{zstdBlockCompr}},
		{"1023 digits", randomDigits(r, 1023), []int{zstdBlockCompr}},
		{"1024 digits", randomDigits(r, 1024), []int{zstdBlockCompr}},
		{"16 KiB digits", randomDigits(r, 16<<10), []int{zstdBlockCompr}},
		{"128 KiB digits", randomDigits(r, 128<<10), []int{zstdBlockCompr}},
		{"a block and a byte", randomDigits(r, 128<<10+1), []int{zstdBlockCompr, zstdBlockRaw}},
		{"a block and 40 bytes", randomDigits(r, 128<<10+40), []int{zstdBlockCompr, zstdBlockCompr}},
		{"512 KiB digits", randomDigits(r, 512<<10), []int{zstdBlockCompr, zstdBlockCompr, zstdBlockCompr, zstdBlockCompr}},
		{"one value repeated", bytes.Repeat([]byte{'4'}, 200<<10), []int{zstdBlockRLE, zstdBlockRLE}},
		{"random bytes", random, []int{zstdBlockRaw, zstdBlockRaw, zstdBlockRaw}},
		{"counters", counters, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lit, err := c.encode(nil, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := frameBlocks(t, lit); tc.types != nil && fmt.Sprint(got) != fmt.Sprint(tc.types) {
				t.Errorf("blocks %v, want %v", got, tc.types)
			}
			for name, frame := range map[string][]byte{"literals frame": lit} {
				back, err := dec.DecodeAll(frame, nil)
				if err != nil || !bytes.Equal(back, tc.in) {
					t.Fatalf("%s decodes to %d bytes (%v), want the %d put in", name, len(back), err, len(tc.in))
				}
			}
			// Encode: into a dirty buffer, the smaller of the two frames.
			dirty := bytes.Repeat([]byte{0xAA}, 64)
			out, err := c.Encode(dirty, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			back, err := cs.seqs.Decode(nil, out)
			if err != nil || !bytes.Equal(back, tc.in) {
				t.Fatalf("Encode's frame decodes to %d bytes (%v), want the %d put in", len(back), err, len(tc.in))
			}
			fastest, _ := cs.ids.Encode(nil, tc.in)
			if len(tc.in) >= 1024 && len(out) > min(len(lit), len(fastest)) {
				t.Errorf("Encode wrote %d bytes; literals %d, zstd fastest %d", len(out), len(lit), len(fastest))
			}
		})
	}
}

// On random digits the literals frame beats both zstd levels, and Encode
// keeps it; on counters zstd's matches win and Encode keeps zstd's frame.
func TestLiteralsCodec_KeepsTheSmallerFrame(t *testing.T) {
	cs, _ := codecsFor(CompressionZstd, 512<<10)
	r := rand.New(rand.NewPCG(3, 4))
	digits := randomDigits(r, 400<<10)
	out, _ := cs.seqs.Encode(nil, digits)
	def, _ := cs.file.Encode(nil, digits)
	fastest, _ := cs.ids.Encode(nil, digits)
	if len(out) >= len(def) || len(out) >= len(fastest) || len(out) > len(digits)/2 {
		t.Errorf("random digits: %d bytes; zstd default %d, fastest %d, of %d", len(out), len(def), len(fastest), len(digits))
	}
	frameBlocks(t, out)

	var counters []byte
	for i := range 40000 {
		counters = fmt.Appendf(counters, "%d,", 1_000_000+i)
	}
	out, _ = cs.seqs.Encode(nil, counters)
	fastest, _ = cs.ids.Encode(nil, counters)
	if !bytes.Equal(out, fastest) {
		t.Errorf("counters: %d bytes, not zstd fastest's %d", len(out), len(fastest))
	}
}

// Any page comes back from a standard zstd decoder as it went in, and the
// literals frame is well formed. go test runs the seeds; to explore:
// go test -run '^$' -fuzz FuzzLiteralsCodec -fuzzminimizetime 0
// ./consumers/archive/ (minimizing large inputs stalls the run). 520,000
// inputs found nothing.
func FuzzLiteralsCodec(f *testing.F) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 31, 32, 1023, 1024, 5000, 128<<10 + 3} {
		f.Add(randomDigits(r, n))
	}
	f.Add(bytes.Repeat([]byte{0}, 3000))
	f.Add([]byte("\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x00\xff\x01"))
	_, c, dec := literalsUnderTest(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		lit, err := c.encode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		frameBlocks(t, lit)
		back, err := dec.DecodeAll(lit, nil)
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("literals frame of %d bytes decodes to %d (%v)", len(in), len(back), err)
		}
		out, err := c.Encode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		if back, err = dec.DecodeAll(out, nil); err != nil || !bytes.Equal(back, in) {
			t.Fatalf("Encode's frame of %d bytes decodes to %d (%v)", len(in), len(back), err)
		}
	})
}
