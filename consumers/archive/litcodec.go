package archive

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/huff0"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// literalsCodec writes zstd frames whose blocks hold only Huffman-coded
// literals: zstd without its match finder. Any zstd decoder reads them
// (the column chunk says ZSTD, as for every other column).
//
// It is for the sequence_number column. Kinesis sequence numbers differ
// from one record to the next in their last ~20 decimal digits, which
// DELTA_BYTE_ARRAY leaves as suffixes: random digits. zstd's default level
// searched them for matches and found thousands of 4-6 digit ones by
// chance, each costing more to code than the digits it saved: 470 ns and
// 13.3 bytes a row (57 MB/s), a third of all compression time. Its fastest
// level gives up and stores them raw (26.7 bytes). Huffman coding alone
// takes 61 ns for 12.7 bytes. Measured on kinesalite's sequence numbers,
// which are laid out as AWS's are.
//
// Hand-written because no zstd library offers a mode without matches:
// klauspost/compress writes such blocks (blockEnc.encodeLits, which this
// follows) only when its match finder found nothing. The Huffman coding
// itself is its huff0 package, the one its zstd encoder uses.
//
// Each page is also given to fallback, zstd's fastest level, and the
// smaller frame kept: sequence numbers that repeat (a test corpus's
// counters, whose suffixes are a few digits) are its to compress.
type literalsCodec struct {
	zstd.Codec // CompressionCodec, String and Decode
	fallback   *zstdCodec
	scratch    sync.Pool // *huff0.Scratch
	bufs       sync.Pool // *[]byte: the fallback's output
}

func newLiteralsCodec(fallback *zstdCodec) *literalsCodec {
	return &literalsCodec{fallback: fallback}
}

// zstd frame and block constants (RFC 8878).
const (
	zstdMagic        = 0xFD2FB528
	zstdMaxBlock     = 128 << 10
	zstdBlockRaw     = 0
	zstdBlockRLE     = 1
	zstdBlockCompr   = 2
	zstdLitsCompr    = 2  // Literals_Block_Type: Huffman-coded with its tree
	zstdMinHuffBlock = 32 // below this a block is stored raw
)

func (c *literalsCodec) Encode(dst, src []byte) ([]byte, error) {
	out, err := c.encode(dst[:0], src)
	if err != nil || len(src) < 1024 {
		return out, err
	}
	// zstd's fastest level gives up on random digits within ~20 ns a row;
	// on repeats it wins.
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer c.bufs.Put(bp)
	z, err := c.fallback.Encode(*bp, src)
	*bp = z
	if err == nil && len(z) < len(out) {
		out = append(out[:0], z...)
	}
	return out, err
}

// encode appends src as one literals-only zstd frame to dst.
func (c *literalsCodec) encode(dst, src []byte) ([]byte, error) {
	s, _ := c.scratch.Get().(*huff0.Scratch)
	if s == nil {
		// WantLogLess 4: a block must shrink by a sixteenth, or it is
		// stored raw (what zstd's own encoder asks).
		s = &huff0.Scratch{WantLogLess: 4}
	}
	defer c.scratch.Put(s)
	// Frame header: Single_Segment (the window is the content), a 4-byte
	// Frame_Content_Size, no checksum, no dictionary.
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	dst = append(dst, 2<<6|1<<5)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(src)))
	if len(src) == 0 {
		return appendBlockHeader(dst, true, zstdBlockRaw, 0), nil
	}
	for rest := src; len(rest) > 0; {
		blk := rest[:min(len(rest), zstdMaxBlock)]
		rest = rest[len(blk):]
		last := len(rest) == 0
		if len(blk) < zstdMinHuffBlock {
			dst = append(appendBlockHeader(dst, last, zstdBlockRaw, len(blk)), blk...)
			continue
		}
		// A table per block: reusing the last one would save ~50 bytes
		// per 128 KiB.
		s.Reuse = huff0.ReusePolicyNone
		var out []byte
		var err error
		single := len(blk) < 1024
		if single {
			out, _, err = huff0.Compress1X(blk, s)
		} else {
			out, _, err = huff0.Compress4X(blk, s)
		}
		var lh uint64
		var lhn int
		if err == nil {
			lh, lhn = literalsHeader(len(out), len(blk), single)
			if lhn+len(out)+1 >= len(blk) {
				err = huff0.ErrIncompressible
			}
		}
		switch err {
		case nil:
			dst = appendBlockHeader(dst, last, zstdBlockCompr, lhn+len(out)+1)
			dst = binary.LittleEndian.AppendUint64(dst, lh)[:len(dst)+lhn]
			dst = append(dst, out...)
			dst = append(dst, 0) // Number_of_Sequences: none
		case huff0.ErrUseRLE:
			dst = append(appendBlockHeader(dst, last, zstdBlockRLE, len(blk)), blk[0])
		case huff0.ErrIncompressible:
			dst = append(appendBlockHeader(dst, last, zstdBlockRaw, len(blk)), blk...)
		default:
			return nil, fmt.Errorf("huffman-code a page: %w", err)
		}
	}
	return dst, nil
}

// appendBlockHeader appends a zstd Block_Header: Last_Block, Block_Type and
// Block_Size in 3 little-endian bytes.
func appendBlockHeader(dst []byte, last bool, typ, size int) []byte {
	h := uint32(typ)<<1 | uint32(size)<<3
	if last {
		h |= 1
	}
	return append(dst, byte(h), byte(h>>8), byte(h>>16))
}

// literalsHeader is the Literals_Section_Header of a Huffman-coded block
// with its tree, and its length: one stream with 10-bit sizes, or four
// with 10, 14 or 18.
func literalsHeader(compressed, regenerated int, single bool) (h uint64, n int) {
	var sizeFormat, bits uint64
	switch {
	case single:
		sizeFormat, bits, n = 0, 10, 3
	case compressed < 1<<10 && regenerated < 1<<10:
		sizeFormat, bits, n = 1, 10, 3
	case compressed < 1<<14 && regenerated < 1<<14:
		sizeFormat, bits, n = 2, 14, 4
	default:
		sizeFormat, bits, n = 3, 18, 5
	}
	return zstdLitsCompr | sizeFormat<<2 | uint64(regenerated)<<4 | uint64(compressed)<<(4+bits), n
}
