package kinesiswire

import (
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Buffers is the memory a GetRecords answer is decoded into (DecodeInto),
// kept for the caller's next answer: the records' data, their Record slots
// and the strings and times they point to (a CBOR answer's body, which its
// records' data point into). Made for every answer, they were ~30% of the
// bytes an archive process allocated, all of it zeroed at allocation.
//
// A caller passes the same Buffers again only once it keeps nothing of the
// answer decoded into them before: not the records, not their Data, not
// anything pointing into Data (the consumers' events' strings do). An
// answer without records releases the memory, so that an idle reader holds
// none. The zero value is ready to use; not safe for concurrent use.
type Buffers struct {
	data    []byte
	records []types.Record
	wire    []jsonRecord
	body    []byte
}

// DecodeInto is a GetRecords option that decodes the answer into b, for a
// Client or a kinesis.Client using UseCBOR; on any other client it does
// nothing, and the answer's memory is its own.
func DecodeInto(b *Buffers) func(*kinesis.Options) {
	return func(o *kinesis.Options) {
		if p, ok := o.Protocol.(*protocol); ok && b != nil {
			o.Protocol = &protocol{ClientProtocol: p.ClientProtocol, format: p.format, bufs: b}
		}
	}
}

// keepBody keeps a CBOR answer's body, which its records point into.
func (b *Buffers) keepBody(body []byte) {
	if b != nil && cap(body) > cap(b.body) {
		b.body = body
	}
}

// keep keeps what a JSON answer was decoded into.
func (b *Buffers) keep(s *recordSink) {
	if cap(s.first) > cap(b.data) {
		b.data = s.first
	}
	if cap(s.out.Records) > cap(b.records) {
		b.records = s.out.Records
	}
	if cap(s.wire) > cap(b.wire) {
		b.wire = s.wire
	}
}

// answered releases the memory after an answer without records (however
// it was decoded), so that an idle reader holds none.
func (b *Buffers) answered(records int) {
	if b != nil && records == 0 {
		*b = Buffers{}
	}
}
