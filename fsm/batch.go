package fsm

import (
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

// EncodeBatch wraps encoded commands in one entry.
func EncodeBatch(entries [][]byte) ([]byte, error) {
	return Encode(batchType, &BatchRequest{Entries: entries})
}

// BatchResult holds one Result per command of a batch, in order.
type BatchResult []Result

func (f *FSM) applyBatch(txn *state.Txn, buf []byte, index uint64) Result {
	req, err := decodeInto[BatchRequest](buf)
	if err != nil {
		return Result{Err: fmt.Errorf("batch: %w", err)}
	}
	out := make(BatchResult, len(req.Entries))
	for i, e := range req.Entries {
		if len(e) == 0 {
			out[i] = Result{Err: fmt.Errorf("batch entry %d is empty: %w", i, ErrInvalid)}
			continue
		}
		res := f.applyOne(txn, e, index)
		out[i] = res
	}
	return Result{Value: out}
}
