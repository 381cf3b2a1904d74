package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// headerLen is magic, version byte and meta length.
const headerLen = len(magic) + 1 + 4

// testState is a state stream with a cluster config and two namespaces.
func testState(t testing.TB) []byte {
	t.Helper()
	st := state.New()
	txn := st.Write(7)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := txn.PutCluster(&structs.ClusterConfig{ClusterID: "c-1", CACertPEM: []byte("ca"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"default", "team-a"} {
		if err := txn.UpsertNamespace(&structs.Namespace{Name: n, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := fsm.WriteSnapshot(&buf, st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testMeta(size int) *raft.SnapshotMeta {
	return &raft.SnapshotMeta{
		Version: raft.SnapshotVersionMax, ID: "2-7-1700000000000", Index: 7, Term: 2, Size: int64(size),
		Configuration:      raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: "127.0.0.1:7401"}}},
		ConfigurationIndex: 1,
	}
}

// testArchive returns a valid archive and the state stream inside it.
func testArchive(t testing.TB) (archive, data []byte) {
	t.Helper()
	data = testState(t)
	var buf bytes.Buffer
	if err := Write(&buf, testMeta(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), data
}

// openBytes writes b to a temporary file and opens it as an archive.
func openBytes(t testing.TB, b []byte) (*Archive, error) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "snap-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return Open(f)
}

// reseal replaces the trailing checksum with a correct one, so a test can
// reach the structural checks behind it.
func reseal(b []byte) []byte {
	body := b[:len(b)-sha256.Size]
	sum := sha256.Sum256(body)
	return append(bytes.Clone(body), sum[:]...)
}

// withMeta rebuilds the archive around different metadata bytes.
func withMeta(archive, data, meta []byte) []byte {
	var b bytes.Buffer
	b.Write(archive[:len(magic)+1])
	_ = binary.Write(&b, binary.BigEndian, uint32(len(meta)))
	b.Write(meta)
	b.Write(data)
	b.Write(make([]byte, sha256.Size))
	return reseal(b.Bytes())
}

func TestWriteOpenRoundTrip(t *testing.T) {
	archive, data := testArchive(t)
	if !bytes.HasPrefix(archive, []byte(magic)) || archive[len(magic)] != version {
		t.Fatalf("archive starts %q, want magic and version %d", archive[:len(magic)+1], version)
	}
	a, err := openBytes(t, archive)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	want := testMeta(len(data))
	if a.Meta.ID != want.ID || a.Meta.Index != want.Index || a.Meta.Term != want.Term || a.Meta.Size != want.Size ||
		a.Meta.Version != want.Version || a.Meta.ConfigurationIndex != want.ConfigurationIndex ||
		len(a.Meta.Configuration.Servers) != 1 || a.Meta.Configuration.Servers[0].ID != "n1" {
		t.Errorf("meta %+v, want %+v", a.Meta, *want)
	}
	if a.Size() != int64(len(archive)) {
		t.Errorf("Size %d, want %d", a.Size(), len(archive))
	}
	got, err := io.ReadAll(a.Data())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("state stream differs after the round trip")
	}
	// Data can be read more than once (restore validates, then streams).
	again, _ := io.ReadAll(a.Data())
	if !bytes.Equal(again, data) {
		t.Error("second read of the state stream differs")
	}
	counts, cluster, err := a.Counts()
	if err != nil {
		t.Fatalf("counts: %v", err)
	}
	if cluster == nil || cluster.ClusterID != "c-1" {
		t.Errorf("cluster config %+v, want c-1", cluster)
	}
	if counts[state.TableNamespaces] != 2 || counts[state.TableCluster] != 1 || counts[state.TableNodes] != 0 {
		t.Errorf("counts %v", counts)
	}
	for _, tb := range state.Tables {
		if _, ok := counts[tb.Name]; !ok {
			t.Errorf("counts lacks table %s", tb.Name)
		}
	}
	if err := a.Close(); err != nil {
		t.Error(err)
	}
}

func TestWriteRefusesSizeMismatch(t *testing.T) {
	data := testState(t)
	for _, size := range []int{len(data) - 1, len(data) + 1, 0} {
		var buf bytes.Buffer
		if err := Write(&buf, testMeta(size), bytes.NewReader(data)); err == nil {
			t.Errorf("meta size %d for %d bytes of state: written without error", size, len(data))
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	w.after--
	return len(p), nil
}

func TestWritePassesWriterErrors(t *testing.T) {
	data := testState(t)
	for after := 0; after < 3; after++ {
		if err := Write(&failWriter{after: after}, testMeta(len(data)), bytes.NewReader(data)); err == nil {
			t.Errorf("writer failing after %d writes: no error", after)
		}
	}
}

func TestOpenRefusesCorruption(t *testing.T) {
	archive, data := testArchive(t)
	metaJSON := archive[headerLen : headerLen+int(binary.BigEndian.Uint32(archive[len(magic)+1:]))]
	metaWith := func(mod func(*raft.SnapshotMeta)) []byte {
		m := testMeta(len(data))
		mod(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	setLen := func(n uint32) []byte {
		b := bytes.Clone(archive)
		binary.BigEndian.PutUint32(b[len(magic)+1:], n)
		return reseal(b)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{'H'}},
		{"shorter than header and checksum", archive[:headerLen+sha256.Size-1]},
		{"truncated by one byte", archive[:len(archive)-1]},
		{"truncated to half", archive[:len(archive)/2]},
		{"truncated to the header", archive[:headerLen]},
		{"checksum missing", archive[:len(archive)-sha256.Size]},
		{"trailing byte", append(bytes.Clone(archive), 0)},
		{"checksum zeroed", append(bytes.Clone(archive[:len(archive)-sha256.Size]), make([]byte, sha256.Size)...)},
		{"bad magic", reseal(append([]byte("HIVESNAQ"), archive[len(magic):]...))},
		{"lower-case magic", reseal(append([]byte("hivesnap"), archive[len(magic):]...))},
		{"meta length beyond the file", setLen(uint32(len(archive)))},
		{"meta length into the checksum", setLen(uint32(len(archive) - headerLen - sha256.Size + 1))},
		{"meta length over the limit", setLen(maxMeta + 1)},
		{"meta length max uint32", setLen(^uint32(0))},
		{"meta length zero", setLen(0)},
		{"meta length one short", setLen(uint32(len(metaJSON) - 1))},
		{"meta length one long", setLen(uint32(len(metaJSON) + 1))},
		{"meta not JSON", withMeta(archive, data, []byte("not json"))},
		{"meta JSON array", withMeta(archive, data, []byte("[]"))},
		{"meta size too large", withMeta(archive, data, metaWith(func(m *raft.SnapshotMeta) { m.Size++ }))},
		{"meta size too small", withMeta(archive, data, metaWith(func(m *raft.SnapshotMeta) { m.Size-- }))},
		{"meta size negative", withMeta(archive, data, metaWith(func(m *raft.SnapshotMeta) { m.Size = -1 }))},
	}
	for _, c := range cases {
		a, err := openBytes(t, c.data)
		if err == nil {
			a.Close()
			t.Errorf("%s: opened without error", c.name)
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %q does not wrap ErrCorrupt", c.name, err)
		}
	}
}

// TestOpenRefusesEveryFlippedByte flips each byte of a valid archive in turn:
// the checksum must catch every one.
func TestOpenRefusesEveryFlippedByte(t *testing.T) {
	archive, _ := testArchive(t)
	f, err := os.CreateTemp(t.TempDir(), "snap-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(archive); err != nil {
		t.Fatal(err)
	}
	for i := range archive {
		for _, mask := range []byte{0x01, 0x80} {
			if _, err := f.WriteAt([]byte{archive[i] ^ mask}, int64(i)); err != nil {
				t.Fatal(err)
			}
			a, err := Open(f)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: opened without error", i, mask)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d ^ %#x: error %q does not wrap ErrCorrupt", i, mask, err)
			}
			_ = a
			if _, err := f.WriteAt(archive[i:i+1], int64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Open(f); err != nil {
		t.Fatalf("restored archive does not open: %v", err)
	}
}

// TestOpenRefusesOtherVersions: an archive from another format version is
// refused before its metadata is parsed, with an error naming the version.
func TestOpenRefusesOtherVersions(t *testing.T) {
	archive, _ := testArchive(t)
	for _, v := range []byte{0, version + 1, 0xff} {
		b := bytes.Clone(archive)
		b[len(magic)] = v
		a, err := openBytes(t, reseal(b))
		if err == nil {
			a.Close()
			t.Fatalf("version %d: opened without error", v)
		}
		if !strings.Contains(err.Error(), "version") {
			t.Errorf("version %d: error %q does not name the version", v, err)
		}
	}
}

// TestCountsRefusesBadStream: an archive whose checksum and structure are
// fine but whose state stream is not Hive state fails validation.
func TestCountsRefusesBadStream(t *testing.T) {
	archive, data := testArchive(t)
	m := testMeta(0)
	for _, c := range []struct {
		name  string
		state []byte
	}{
		{"empty stream", nil},
		{"not msgpack", []byte("hello world")},
		{"truncated stream", data[:len(data)-3]},
		{"unknown table", append(bytes.Clone(data), 0xcc, 0x7f)},
	} {
		m.Size = int64(len(c.state))
		mb, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		a, err := openBytes(t, withMeta(archive, c.state, mb))
		if err != nil {
			t.Fatalf("%s: open: %v", c.name, err)
		}
		if _, _, err := a.Counts(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Counts error %v, want ErrCorrupt", c.name, err)
		}
	}
}

func TestInspect(t *testing.T) {
	archive, _ := testArchive(t)
	path := filepath.Join(t.TempDir(), "s.hive")
	if err := os.WriteFile(path, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "2-7-1700000000000" || info.Index != 7 || info.Term != 2 || info.Size != int64(len(archive)) ||
		info.Tables[state.TableNamespaces] != 2 || info.Tables[state.TableCluster] != 1 {
		t.Errorf("inspect: %+v", info)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("inspect of a missing file: no error")
	}
	if err := os.WriteFile(path, archive[:len(archive)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("inspect of a truncated file: %v, want ErrCorrupt", err)
	}
}

// FuzzOpen feeds arbitrary bytes to Open, as-is and with a valid checksum
// appended so the structural checks behind it are reached; neither may
// panic, and an archive that opens must also survive Counts.
func FuzzOpen(f *testing.F) {
	archive, data := testArchive(f)
	f.Add(archive)
	f.Add(archive[:len(archive)-sha256.Size])
	f.Add(archive[:headerLen])
	f.Add(data)
	f.Add([]byte(magic))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		sum := sha256.Sum256(b)
		for _, in := range [][]byte{b, append(bytes.Clone(b), sum[:]...)} {
			fh, err := os.CreateTemp(dir, "fuzz-*")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fh.Write(in); err != nil {
				t.Fatal(err)
			}
			a, err := Open(fh)
			if err == nil {
				if a.Meta.Size < 0 || a.off+a.Meta.Size+sha256.Size != a.Size() {
					t.Fatalf("opened archive with inconsistent sizes: meta %d, offset %d, file %d", a.Meta.Size, a.off, a.Size())
				}
				_, _, _ = a.Counts()
			}
			fh.Close()
			os.Remove(fh.Name())
		}
	})
}
