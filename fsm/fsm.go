// Package fsm is Hive's Raft finite state machine: typed commands (one type
// byte + a msgpack body) applied to the state store, and streamed snapshots
// of every table.
package fsm

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm/state"
)

// MessageType is the first byte of every Raft log entry.
type MessageType uint8

// IgnoreUnknownTypeFlag marks a command that an older manager which does not
// know its type may skip instead of halting (as in Nomad).
const IgnoreUnknownTypeFlag MessageType = 128

// command is what a message type registers: how to apply it.
type command struct {
	name  string
	apply func(txn *state.Txn, buf []byte) (any, error)
}

var registry = map[MessageType]command{}

// register adds a command type. Called from init functions beside each
// table's commands, so adding a command never touches a central switch.
func register(t MessageType, name string, apply func(txn *state.Txn, buf []byte) (any, error)) {
	if t&IgnoreUnknownTypeFlag != 0 {
		panic(fmt.Sprintf("fsm: type %d of %s uses the ignore flag bit", t, name))
	}
	if _, dup := registry[t]; dup {
		panic(fmt.Sprintf("fsm: type %d registered twice", t))
	}
	registry[t] = command{name: name, apply: apply}
}

// decodeInto is the body decoder every command uses.
func decodeInto[T any](buf []byte) (*T, error) {
	v := new(T)
	d := decoders.Get().(*codec.Decoder)
	d.ResetBytes(buf)
	err := d.Decode(v)
	d.ResetBytes(noBytes) // drop the reference to buf before pooling
	decoders.Put(d)
	if err != nil {
		return nil, fmt.Errorf("decode command body: %w", err)
	}
	return v, nil
}

// Decoders and encoders are reused: a codec.Decoder is several kilobytes of
// state, and every write is decoded once on each manager and encoded once on
// the leader. Reset clears all state from the previous use.
var (
	noBytes  = []byte{}
	decoders = sync.Pool{New: func() any { return codec.NewDecoderBytes(noBytes, msgpackHandle) }}
	encoders = sync.Pool{New: func() any { return new(pooledEncoder) }}
)

type pooledEncoder struct {
	enc *codec.Encoder
	buf []byte
}

var msgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.RawToString = true
	h.WriteExt = true
	return h
}()

// Encode builds a log entry: type byte followed by the msgpack body.
func Encode(t MessageType, body any) ([]byte, error) {
	pe := encoders.Get().(*pooledEncoder)
	defer encoders.Put(pe)
	// The encoder writes from the start of the scratch buffer, which goes
	// back to the pool; the caller gets its own copy, sized exactly.
	body0 := pe.buf[:0]
	if pe.enc == nil {
		pe.enc = codec.NewEncoderBytes(&body0, msgpackHandle)
	} else {
		pe.enc.ResetBytes(&body0)
	}
	err := pe.enc.Encode(body)
	if cap(body0) <= maxPooledEncodeBuf {
		pe.buf = body0
	}
	if err != nil {
		return nil, fmt.Errorf("encode %d: %w", t, err)
	}
	out := make([]byte, 1+len(body0))
	out[0] = byte(t)
	copy(out[1:], body0)
	return out, nil
}

// maxPooledEncodeBuf keeps one large command from pinning a large buffer.
const maxPooledEncodeBuf = 64 << 10

// Result is what Apply returns for one command, read through
// raft.ApplyFuture.Response.
type Result struct {
	Value any
	Err   error
}

// FSM implements raft.FSM over a state.Store.
type FSM struct {
	logger hclog.Logger

	mu    sync.RWMutex
	store *state.Store
}

// New returns an FSM with an empty store.
func New(logger hclog.Logger) *FSM {
	return &FSM{logger: logger.Named("fsm"), store: state.New()}
}

// State returns the current store. Callers must call it again after a
// restore (the old store's AbandonCh closes then).
func (f *FSM) State() *state.Store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.store
}

// Apply applies one Raft log entry.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	txn := f.State().Write(l.Index)
	res := f.applyOne(txn, l.Data, l.Index)
	if res.Err != nil {
		txn.Abort()
		return res
	}
	if err := txn.Commit(); err != nil {
		return Result{Err: fmt.Errorf("commit entry %d: %w", l.Index, err)}
	}
	return res
}

// applyOne runs one command inside txn. A command that fails validation
// returns its error; the transaction is then aborted by the caller so that a
// rejected write changes nothing.
func (f *FSM) applyOne(txn *state.Txn, data []byte, index uint64) Result {
	t := MessageType(data[0])
	ignore := t&IgnoreUnknownTypeFlag != 0
	t &^= IgnoreUnknownTypeFlag
	if t == batchType {
		return f.applyBatch(txn, data[1:], index)
	}
	cmd, ok := registry[t]
	if !ok {
		if ignore {
			f.logger.Warn("ignoring unknown command type", "type", t, "index", index)
			return Result{}
		}
		// Halting is the only safe choice: skipping a command we do not
		// understand would let this manager's state diverge silently.
		panic(fmt.Sprintf("fsm: unknown command type %d at index %d; upgrade this manager", t, index))
	}
	v, err := cmd.apply(txn, data[1:])
	if err != nil {
		return Result{Err: fmt.Errorf("%s: %w", cmd.name, err)}
	}
	return Result{Value: v}
}

// Snapshot captures the current store for raft.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.State().Snapshot()}, nil
}

// Restore replaces the store with the contents of a snapshot stream.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	fresh := state.New()
	if err := LoadSnapshot(rc, fresh); err != nil {
		return err
	}
	f.mu.Lock()
	old := f.store
	f.store = fresh
	f.mu.Unlock()
	old.Abandon()
	return nil
}
