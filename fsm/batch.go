package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/hivesec/hive/fsm/state"
)

// BatchRequest carries several encoded commands in one Raft entry. Each
// command succeeds or fails alone. memdb has no savepoints, so this relies on
// the rule every apply function follows: check everything, then write. A
// command that fails has written nothing, and its neighbours are unaffected.
type BatchRequest struct {
	Entries [][]byte
}

// batchPrefix is how msgpack (with msgpackHandle) starts a BatchRequest: a
// one-entry map whose key is the field name.
const batchPrefix = "\x81\xa7Entries"

// EncodeBatch wraps encoded commands in one entry.
//
// The bytes are exactly what Encode(batchType, &BatchRequest{...}) writes
// (TestEncodeBatchMatchesCodec holds it to that), but framed by hand: the
// entries are already encoded, so the only work left is one copy of each
// into a buffer allocated once at its final size. Under load this runs for
// every write on the leader's critical path.
func EncodeBatch(entries [][]byte) ([]byte, error) {
	size := 1 + len(batchPrefix) + 5
	for _, e := range entries {
		size += 5 + len(e)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, byte(batchType))
	buf = append(buf, batchPrefix...)
	if entries == nil {
		return append(buf, 0xc0), nil // nil slice
	}
	switch n := len(entries); {
	case n < 16:
		buf = append(buf, 0x90|byte(n))
	case n <= 0xffff:
		buf = binary.BigEndian.AppendUint16(append(buf, 0xdc), uint16(n))
	default:
		buf = binary.BigEndian.AppendUint32(append(buf, 0xdd), uint32(n))
	}
	for _, e := range entries {
		switch n := len(e); {
		case e == nil:
			buf = append(buf, 0xc0)
			continue
		case n <= 0xff:
			buf = append(buf, 0xc4, byte(n))
		case n <= 0xffff:
			buf = binary.BigEndian.AppendUint16(append(buf, 0xc5), uint16(n))
		default:
			buf = binary.BigEndian.AppendUint32(append(buf, 0xc6), uint32(n))
		}
		buf = append(buf, e...)
	}
	return buf, nil
}

// decodeBatch reads a BatchRequest body. The common shape, the one
// EncodeBatch writes, is parsed directly and the entries returned are
// sub-slices of buf (nothing is copied; commands copy what they keep when
// they decode). Anything else goes through the generic decoder.
func decodeBatch(buf []byte) ([][]byte, error) {
	if entries, ok := parseBatch(buf); ok {
		return entries, nil
	}
	req, err := decodeInto[BatchRequest](buf)
	if err != nil {
		return nil, err
	}
	return req.Entries, nil
}

// parseBatch is the fast path of decodeBatch; ok is false when buf is not
// in the exact shape EncodeBatch writes.
func parseBatch(buf []byte) (entries [][]byte, ok bool) {
	if len(buf) < len(batchPrefix)+1 || string(buf[:len(batchPrefix)]) != batchPrefix {
		return nil, false
	}
	p := buf[len(batchPrefix):]
	// next returns the big-endian length of k bytes at the head of p.
	next := func(k int) (int, bool) {
		if len(p) < k {
			return 0, false
		}
		var n uint64
		for _, b := range p[:k] {
			n = n<<8 | uint64(b)
		}
		p = p[k:]
		return int(n), n <= uint64(len(buf))
	}
	var n int
	switch h := p[0]; {
	case h == 0xc0:
		return nil, len(p) == 1
	case h&0xf0 == 0x90:
		n, p = int(h&0x0f), p[1:]
	case h == 0xdc:
		p = p[1:]
		if n, ok = next(2); !ok {
			return nil, false
		}
	case h == 0xdd:
		p = p[1:]
		if n, ok = next(4); !ok {
			return nil, false
		}
	default:
		return nil, false
	}
	if n > len(p) { // every entry takes at least one byte
		return nil, false
	}
	entries = make([][]byte, n)
	for i := range entries {
		if len(p) == 0 {
			return nil, false
		}
		h := p[0]
		p = p[1:]
		var l int
		switch h {
		case 0xc0:
			continue // nil entry
		case 0xc4:
			l, ok = next(1)
		case 0xc5:
			l, ok = next(2)
		case 0xc6:
			l, ok = next(4)
		default:
			return nil, false
		}
		if !ok || l > len(p) {
			return nil, false
		}
		entries[i] = p[:l:l]
		p = p[l:]
	}
	return entries, len(p) == 0
}

// BatchResult holds one Result per command of a batch, in order.
type BatchResult []Result

func (f *FSM) applyBatch(txn *state.Txn, buf []byte, index uint64) Result {
	entries, err := decodeBatch(buf)
	if err != nil {
		return Result{Err: fmt.Errorf("batch: %w", err)}
	}
	out := make(BatchResult, len(entries))
	for i, e := range entries {
		if len(e) == 0 {
			out[i] = Result{Err: fmt.Errorf("batch entry %d is empty: %w", i, ErrInvalid)}
			continue
		}
		out[i] = f.applyOne(txn, e, index)
	}
	return Result{Value: out}
}
