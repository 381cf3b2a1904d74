package fsm

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm/state"
)

// snapshotHeader starts every state stream so a foreign file is refused.
const snapshotHeader = "hive-state-v1"

type fsmSnapshot struct{ snap *state.Snapshot }

// Persist streams every table: a header, then (table ID, record) pairs.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.snap); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release is a no-op: memdb snapshots need no cleanup.
func (s *fsmSnapshot) Release() {}

// WriteSnapshot encodes every table of snap to w.
func WriteSnapshot(w io.Writer, snap *state.Snapshot) error {
	enc := codec.NewEncoder(w, msgpackHandle)
	if err := enc.Encode(snapshotHeader); err != nil {
		return fmt.Errorf("snapshot: write header: %w", err)
	}
	for _, t := range state.Tables {
		err := snap.Each(t.Name, func(obj any) error {
			if err := enc.Encode(t.ID); err != nil {
				return err
			}
			return enc.Encode(obj)
		})
		if err != nil {
			return fmt.Errorf("snapshot: write table %s: %w", t.Name, err)
		}
	}
	return nil
}

// DecodeSnapshot reads a state stream and calls fn for every record.
func DecodeSnapshot(r io.Reader, fn func(t state.Table, obj any) error) error {
	dec := codec.NewDecoder(r, msgpackHandle)
	var header string
	if err := dec.Decode(&header); err != nil {
		return fmt.Errorf("snapshot: read header: %w", err)
	}
	if header != snapshotHeader {
		return fmt.Errorf("snapshot: not a Hive state stream (header %q)", header)
	}
	for {
		var id byte
		if err := dec.Decode(&id); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("snapshot: read record type: %w", err)
		}
		t, ok := state.TableByID(id)
		if !ok {
			return fmt.Errorf("snapshot: unknown table type %d; was it written by a newer Hive?", id)
		}
		obj := t.New()
		if err := dec.Decode(obj); err != nil {
			return fmt.Errorf("snapshot: read %s record: %w", t.Name, err)
		}
		if err := fn(t, obj); err != nil {
			return err
		}
	}
}

// LoadSnapshot decodes a state stream into an empty store in one
// transaction: either every record lands or none does.
func LoadSnapshot(r io.Reader, into *state.Store) error {
	res := into.Restore()
	if err := DecodeSnapshot(r, func(t state.Table, obj any) error {
		return res.Insert(t.Name, obj)
	}); err != nil {
		res.Abort()
		return err
	}
	return res.Commit()
}
