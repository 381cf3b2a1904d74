// Package snapshot reads and writes Hive's snapshot archive: a Raft snapshot
// with its metadata and a SHA-256 checksum, so a damaged file is refused
// before it can replace cluster state.
//
// Layout: "HIVESNAP" | version byte | uint32 meta length | meta JSON |
// state stream (meta.Size bytes) | SHA-256 of everything before it.
package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

const (
	magic   = "HIVESNAP"
	version = 1
	// maxMeta bounds the metadata block so a hostile file cannot make us
	// allocate without limit.
	maxMeta = 1 << 20
)

// ErrCorrupt is wrapped by every error about a damaged archive.
var ErrCorrupt = errors.New("snapshot archive is corrupt")

// Write streams an archive of the snapshot (meta, data) to w.
func Write(w io.Writer, meta *raft.SnapshotMeta, data io.Reader) error {
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("snapshot: encode metadata: %w", err)
	}
	var hdr bytes.Buffer
	hdr.WriteString(magic)
	hdr.WriteByte(version)
	_ = binary.Write(&hdr, binary.BigEndian, uint32(len(mb)))
	hdr.Write(mb)
	if _, err := mw.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("snapshot: write header: %w", err)
	}
	n, err := io.Copy(mw, data)
	if err != nil {
		return fmt.Errorf("snapshot: write state: %w", err)
	}
	if n != meta.Size {
		return fmt.Errorf("snapshot: state stream was %d bytes, metadata says %d", n, meta.Size)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("snapshot: write checksum: %w", err)
	}
	return nil
}

// Archive is a verified archive on disk.
type Archive struct {
	Meta raft.SnapshotMeta
	f    *os.File
	off  int64
	size int64 // file size
}

// Data returns a reader over the state stream.
func (a *Archive) Data() io.Reader { return io.NewSectionReader(a.f, a.off, a.Meta.Size) }

// Size is the archive's size in bytes.
func (a *Archive) Size() int64 { return a.size }

// Close releases the file.
func (a *Archive) Close() error { return a.f.Close() }

// Open verifies the checksum and structure of the archive in f, which must
// be seekable, and returns it ready to read.
func Open(f *os.File) (*Archive, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	size := st.Size()
	minSize := int64(len(magic) + 1 + 4 + sha256.Size)
	if size < minSize {
		return nil, fmt.Errorf("%w: file is %d bytes, too short to be a Hive snapshot", ErrCorrupt, size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size-sha256.Size)); err != nil {
		return nil, fmt.Errorf("snapshot: read: %w", err)
	}
	sum := make([]byte, sha256.Size)
	if _, err := f.ReadAt(sum, size-sha256.Size); err != nil {
		return nil, fmt.Errorf("snapshot: read checksum: %w", err)
	}
	if !bytes.Equal(sum, h.Sum(nil)) {
		return nil, fmt.Errorf("%w: checksum mismatch (the file was truncated or modified); nothing was restored", ErrCorrupt)
	}
	hdr := make([]byte, len(magic)+1+4)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("snapshot: read header: %w", err)
	}
	if string(hdr[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a Hive snapshot (bad magic)", ErrCorrupt)
	}
	if hdr[len(magic)] != version {
		return nil, fmt.Errorf("snapshot: archive version %d is not supported by this Hive (want %d)", hdr[len(magic)], version)
	}
	ml := int64(binary.BigEndian.Uint32(hdr[len(magic)+1:]))
	if ml > maxMeta || int64(len(hdr))+ml > size-sha256.Size {
		return nil, fmt.Errorf("%w: metadata length %d out of range", ErrCorrupt, ml)
	}
	mb := make([]byte, ml)
	if _, err := f.ReadAt(mb, int64(len(hdr))); err != nil {
		return nil, fmt.Errorf("snapshot: read metadata: %w", err)
	}
	a := &Archive{f: f, off: int64(len(hdr)) + ml, size: size}
	if err := json.Unmarshal(mb, &a.Meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorrupt, err)
	}
	if a.off+a.Meta.Size != size-sha256.Size {
		return nil, fmt.Errorf("%w: metadata says %d bytes of state but the file holds %d", ErrCorrupt, a.Meta.Size, size-sha256.Size-a.off)
	}
	return a, nil
}

// Counts decodes the state stream and counts records per table; it fails on
// any record that does not decode, so it doubles as a full validation.
func (a *Archive) Counts() (map[string]int, *structs.ClusterConfig, error) {
	counts := map[string]int{}
	for _, t := range state.Tables {
		counts[t.Name] = 0
	}
	var cluster *structs.ClusterConfig
	err := fsm.DecodeSnapshot(a.Data(), func(t state.Table, obj any) error {
		counts[t.Name]++
		if c, ok := obj.(*structs.ClusterConfig); ok {
			cluster = c
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return counts, cluster, nil
}

// Inspect reads the archive at path, verifies its checksum and counts the
// records of every state table.
func Inspect(path string) (structs.SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return structs.SnapshotInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	a, err := Open(f)
	if err != nil {
		return structs.SnapshotInfo{}, err
	}
	counts, _, err := a.Counts()
	if err != nil {
		return structs.SnapshotInfo{}, err
	}
	return structs.SnapshotInfo{ID: a.Meta.ID, Index: a.Meta.Index, Term: a.Meta.Term, Size: a.size, Tables: counts}, nil
}
