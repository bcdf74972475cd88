package kinesiswire

import "unsafe"

// BuffersMemory is the memory b keeps records' data in (a JSON answer's
// decoded data, or a CBOR answer's body), and how many bytes b holds.
func BuffersMemory(b *Buffers) (data []byte, held int) {
	data = b.data
	if b.body != nil {
		data = b.body
	}
	held = cap(b.data) + cap(b.body) + cap(b.records)*int(unsafe.Sizeof(b.records[:1][0])) + cap(b.wire)*int(unsafe.Sizeof(jsonRecord{}))
	return data[:cap(data)], held
}
