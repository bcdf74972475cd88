package archive

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// pqDictionary is a column chunk's dictionary: its entries PLAIN-encoded,
// as the dictionary page holds them, and an index from a value to its
// entry.
//
// The index is an open-addressing table of 8-byte slots (entry number
// and hash) over the entries' own bytes, not a map[string]int32: a map
// needs a copy of every value as its key (an allocation per entry) and
// ~40 bytes a slot that the collector scans. The table takes 16–32 bytes
// an entry, never scanned. A lookup costs the same (~20 ns,
// BenchmarkPQDictionary_Loadgen); trying the last entry found first
// did not make it cheaper, even for a file's one shard or type.
type pqDictionary struct {
	plain []byte   // PLAIN-encoded entries: the dictionary page
	offs  []uint32 // where each entry's bytes start in plain
	// slots: 0 empty, else entry+1 in the high 32 bits and the value's
	// hash in the low; a power of two long, at most half full.
	slots []uint64
	seed  maphash.Seed // for values longer than 16 bytes
	seed2 uint64       // for the others (hashShort)
}

// dictMinSlots is the table's size for a chunk's first entries.
const dictMinSlots = 16

// len is the number of entries.
func (d *pqDictionary) len() int { return len(d.offs) }

// entry is entry i's bytes, in plain.
func (d *pqDictionary) entry(i int32) []byte {
	start := d.offs[i]
	return d.plain[start : start+binary.LittleEndian.Uint32(d.plain[start-4:])]
}

// index is s's entry, added if it is new.
func (d *pqDictionary) index(s string) int32 {
	if d.slots == nil {
		d.seed, d.seed2 = maphash.MakeSeed(), rand.Uint64()
		d.slots = make([]uint64, dictMinSlots)
	}
	var h uint32
	if len(s) <= 16 {
		h = uint32(hashShort(s, d.seed2))
	} else {
		h = uint32(maphash.String(d.seed, s))
	}
	mask := uint32(len(d.slots) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		slot := d.slots[p]
		if slot == 0 {
			i := d.add(s)
			d.slots[p] = uint64(i+1)<<32 | uint64(h)
			if 2*len(d.offs) > len(d.slots) {
				d.grow()
			}
			return i
		}
		if uint32(slot) == h {
			if i := int32(slot>>32) - 1; string(d.entry(i)) == s {
				return i
			}
		}
	}
}

// hashShort hashes a value of at most 16 bytes as wyhash does such
// inputs: its first and last 8 (or 4, or 3) bytes multiplied together,
// keyed by seed. Most dictionary values are that short (ids, names,
// enums); maphash, a call into the runtime, took 3 times as long.
func hashShort(s string, seed uint64) uint64 {
	n := len(s)
	var a, b uint64
	switch {
	case n >= 8:
		a = binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), n))
		b = binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[n-8:]), 8))
	case n >= 4:
		a = uint64(binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(s), n)))
		b = uint64(binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(s[n-4:]), 4)))
	case n > 0:
		a = uint64(s[0])<<16 | uint64(s[n>>1])<<8 | uint64(s[n-1])
	}
	hi, lo := bits.Mul64(a^seed^0xa0761d6478bd642f, b^uint64(n)^0xe7037ed1a0b428db)
	return hi ^ lo
}

// add appends s as a new entry.
func (d *pqDictionary) add(s string) int32 {
	i := int32(len(d.offs))
	d.plain = binary.LittleEndian.AppendUint32(d.plain, uint32(len(s)))
	d.offs = append(d.offs, uint32(len(d.plain)))
	d.plain = append(d.plain, unsafe.Slice(unsafe.StringData(s), len(s))...)
	return i
}

// grow doubles the table.
func (d *pqDictionary) grow() {
	old := d.slots
	d.slots = make([]uint64, 2*len(old))
	mask := uint32(len(d.slots) - 1)
	for _, slot := range old {
		if slot == 0 {
			continue
		}
		p := uint32(slot) & mask
		for d.slots[p] != 0 {
			p = (p + 1) & mask
		}
		d.slots[p] = slot
	}
}

// reset empties the dictionary for the next chunk, keeping its memory.
func (d *pqDictionary) reset() {
	d.plain, d.offs = d.plain[:0], d.offs[:0]
	clear(d.slots)
}

// drop releases the dictionary's memory.
func (d *pqDictionary) drop() {
	d.plain, d.offs, d.slots = nil, nil, nil
}

// heldBytes is the dictionary's memory, at capacity.
func (d *pqDictionary) heldBytes() int {
	return cap(d.plain) + 4*cap(d.offs) + 8*cap(d.slots)
}
