package archive

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/clickstream-go/clickstream/consumers"
)

// shardState is what the archive keeps in the runtime's per-shard
// StateStore, next to the checkpoint (docs/DESIGN.md §4.4 "Exactly once,
// concretely"):
//
//   - Written: every record of the shard at or before it is in S3. Records
//     the runtime replays up to it (its checkpoint may lag) are skipped.
//   - Pending: a flush that may have been partly uploaded: it holds every
//     good record in (Written, To], one object per partition with the listed
//     keys. It is saved before the first byte is uploaded; a new owner
//     re-buffers exactly that range and uploads the same objects (same keys)
//     before it buffers anything newer.
//
// Every flush writes all of the shard's buffered records, so "written" is a
// single position rather than a mark per partition, and the state stays a
// few hundred bytes plus the pending keys (bounded by MaxPartitions).
type shardState struct {
	Written consumers.Position
	Pending *pendingFlush
}

type pendingFlush struct {
	To   consumers.Position
	Keys []string
}

// stateVersion is the format of the stored state; a newer one is refused
// rather than misread.
const stateVersion = 1

type wirePos struct {
	Seq string `json:"seq,omitempty"`
	Sub int64  `json:"sub,omitempty"`
}

type wireState struct {
	V       int          `json:"v"`
	Written wirePos      `json:"written"`
	Pending *wirePending `json:"pending,omitempty"`
}

type wirePending struct {
	To   wirePos  `json:"to"`
	Keys []string `json:"keys"`
}

// gzipAbove: states larger than this are stored gzipped. Pending keys share
// long prefixes (partition paths, 56-digit sequence numbers) and shrink
// several-fold, which keeps the DynamoDB lease item small.
const gzipAbove = 2048

func toWire(p consumers.Position) wirePos { return wirePos{Seq: p.SequenceNumber, Sub: p.SubSequence} }
func fromWire(p wirePos) consumers.Position {
	return consumers.Position{SequenceNumber: p.Seq, SubSequence: p.Sub}
}

// marshal encodes s; the zero state encodes as nil (nothing to keep).
func (s shardState) marshal() ([]byte, error) {
	if s.Written.IsZero() && s.Pending == nil {
		return nil, nil
	}
	w := wireState{V: stateVersion, Written: toWire(s.Written)}
	if s.Pending != nil {
		w.Pending = &wirePending{To: toWire(s.Pending.To), Keys: s.Pending.Keys}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode archive state: %w", err)
	}
	if len(b) <= gzipAbove {
		return b, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress archive state: %w", err)
	}
	return buf.Bytes(), nil
}

var errBadState = errors.New("bad archive shard state")

// unmarshalState decodes what marshal wrote; nil or empty is the zero state.
func unmarshalState(b []byte) (shardState, error) {
	if len(b) == 0 {
		return shardState{}, nil
	}
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return shardState{}, fmt.Errorf("%w: %v", errBadState, err)
		}
		// The limit guards against a corrupt length, not real states.
		if b, err = io.ReadAll(io.LimitReader(zr, 64<<20)); err != nil {
			return shardState{}, fmt.Errorf("%w: %v", errBadState, err)
		}
	}
	var w wireState
	if err := json.Unmarshal(b, &w); err != nil {
		return shardState{}, fmt.Errorf("%w: %v", errBadState, err)
	}
	if w.V != stateVersion {
		return shardState{}, fmt.Errorf("%w: version %d, this build reads %d", errBadState, w.V, stateVersion)
	}
	s := shardState{Written: fromWire(w.Written)}
	if w.Pending != nil {
		if w.Pending.To.Seq == "" {
			return shardState{}, fmt.Errorf("%w: pending flush without an end position", errBadState)
		}
		s.Pending = &pendingFlush{To: fromWire(w.Pending.To), Keys: w.Pending.Keys}
	}
	return s, nil
}
