package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriterResumesChain(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{})
	writeN(t, w, 0, 5)
	head := w.Head()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openTest(t, dir, WriterOptions{})
	e := testEntry(5)
	if err := w.Write(e); err != nil {
		t.Fatal(err)
	}
	if e.Prev != head {
		t.Fatalf("first entry after reopening has prev %s, want the old head %s", e.Prev, head)
	}
	writeN(t, w, 6, 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("Files = %v, want only audit.log", files)
	}
	res, err := Verify(files...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Entries != 11 { // one file-start, ten entries: resuming adds nothing
		t.Fatalf("Entries = %d, want 11", res.Entries)
	}
}

func TestWriterBrokenTailRestarts(t *testing.T) {
	cases := map[string]func(lines [][]byte) [][]byte{
		"partial last line": func(lines [][]byte) [][]byte {
			return append(lines, []byte(`{"time":"2025-03-01T12:00:00Z","subj`))
		},
		"edited last line": func(lines [][]byte) [][]byte {
			last := bytes.Clone(lines[len(lines)-1])
			last[20] ^= 1
			lines[len(lines)-1] = last
			return lines
		},
		"second-to-last line removed": func(lines [][]byte) [][]byte {
			return append(lines[:len(lines)-2:len(lines)-2], lines[len(lines)-1])
		},
		"garbage line": func(lines [][]byte) [][]byte {
			return append(lines, []byte("not json\n"))
		},
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w := openTest(t, dir, WriterOptions{})
			writeN(t, w, 0, 5)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, currentName)
			writeLines(t, path, breakIt(readLines(t, path)))
			broken, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			w = openTest(t, dir, WriterOptions{})
			writeN(t, w, 5, 2)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			files, err := Files(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 2 {
				t.Fatalf("Files = %v, want the broken file moved aside and a new audit.log", files)
			}
			kept, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kept, broken) {
				t.Fatal("the broken file was changed when it was moved aside")
			}
			lines := readLines(t, files[1])
			var first Entry
			if err := json.Unmarshal(lines[0], &first); err != nil {
				t.Fatal(err)
			}
			if first.Event != EventChainRestart || first.Prev != Genesis || !strings.Contains(first.Reason, filepath.Base(files[0])) {
				t.Fatalf("first entry of the new file = %+v, want a chain-restart at genesis naming %s", first, files[0])
			}
			if _, err := Verify(files[1]); err != nil {
				t.Fatalf("the new chain does not verify: %v", err)
			}
			// The break stays visible to a full verify.
			_, err = Verify(files...)
			var be *BrokenLinkError
			if !errors.As(err, &be) || be.File != files[0] {
				t.Fatalf("Verify(all) = %v, want a break in the old file", err)
			}
		})
	}
}

// A crash between rotating and writing the new file's first entry leaves
// audit.log empty or missing; the chain goes on from the rotated file.
func TestWriterContinuesFromRotatedFile(t *testing.T) {
	for _, mode := range []string{"empty", "missing"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			w := openTest(t, dir, WriterOptions{})
			writeN(t, w, 0, 3)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, currentName)
			if err := os.Rename(path, filepath.Join(dir, "audit-20250301T120000.000Z.log")); err != nil {
				t.Fatal(err)
			}
			if mode == "empty" {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			w = openTest(t, dir, WriterOptions{})
			writeN(t, w, 3, 3)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			files, _ := Files(dir)
			res, err := Verify(files...)
			if err != nil || res.Files != 2 || res.Entries != 8 {
				t.Fatalf("Verify = %+v, %v; want 2 files, 8 entries", res, err)
			}
		})
	}
}

func TestWriterConcurrent(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBytes: 16 << 10, MaxFiles: 1000})
	const goroutines, each = 8, 150
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := w.Write(testEntry(g*each + i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(files...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if want := goroutines*each + len(files); res.Entries != want || len(files) < 3 {
		t.Fatalf("Verify = %+v over %d files, want %d entries and several rotations", res, len(files), want)
	}
}

func TestWriterRetention(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBytes: 1500, MaxFiles: 3})
	writeN(t, w, 0, 40)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("Files = %v, want 3", files)
	}
	res, err := Verify(files...)
	if err != nil || !res.MidChain {
		t.Fatalf("Verify = %+v, %v; want a mid-chain start that verifies", res, err)
	}
	var first Entry
	if err := json.Unmarshal(readLines(t, files[2])[0], &first); err != nil {
		t.Fatal(err)
	}
	if first.Event != EventFileStart || !strings.Contains(first.Reason, "removed by retention") {
		t.Fatalf("first entry of audit.log = %+v, want a file-start naming removed files", first)
	}
}

func TestWriterLevelsAndBodies(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBodyBytes: 100})
	body := json.RawMessage(`{"name":"web","count":2}`)
	cases := []struct {
		level         Level
		wantLevel     Level
		wantReq, want bool
	}{
		{LevelNone, LevelMetadata, false, false},
		{LevelMetadata, LevelMetadata, false, false},
		{LevelRequest, LevelRequest, true, false},
		{LevelRequestResponse, LevelRequestResponse, true, true},
	}
	for _, c := range cases {
		e := &Entry{Subject: "user:alice", Level: c.level, Request: body, Response: body}
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
		if e.Level != c.wantLevel || (e.Request != nil) != c.wantReq || (e.Response != nil) != c.want {
			t.Errorf("level %v: wrote level %v, request %s, response %s", c.level, e.Level, e.Request, e.Response)
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("level %v: time %v, want set and UTC", c.level, e.Time)
		}
	}
	big := &Entry{Level: LevelRequest, Request: json.RawMessage(`{"x":"` + strings.Repeat("a", 200) + `"}`)}
	if err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(big.Request), "over the 100-byte limit") {
		t.Errorf("oversized body written as %s", big.Request)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(&Entry{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if err := w.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
	if _, err := Verify(filepath.Join(dir, currentName)); err != nil {
		t.Fatal(err)
	}
}

func TestWriterOneWriterPerDir(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{})
	if w2, err := Open(dir, WriterOptions{}); err == nil {
		w2.Close()
		t.Fatal("a second Open of the same directory succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openTest(t, dir, WriterOptions{}) // the lock went with Close
	w.Close()
}

func TestWriterSyncEveryWrite(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{SyncEveryWrite: true})
	writeN(t, w, 0, 3)
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// Readable and whole before Close.
	if res, err := Verify(filepath.Join(dir, currentName)); err != nil || res.Entries != 4 {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

type collectSink struct {
	mu      sync.Mutex
	entries []*Entry
}

func (s *collectSink) Send(e *Entry) {
	s.mu.Lock()
	s.entries = append(s.entries, e)
	s.mu.Unlock()
}

// Sinks see the entries in chain order, and what they see re-marshals to
// the same hashes, so a receiver can check the chain too.
func TestWriterSinks(t *testing.T) {
	dir := t.TempDir()
	sink := &collectSink{}
	w := openTest(t, dir, WriterOptions{Sinks: []Sink{sink}, MaxBytes: 3000})
	writeN(t, w, 0, 20)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := Files(dir)
	var lines [][]byte
	for _, f := range files {
		lines = append(lines, readLines(t, f)...)
	}
	if len(sink.entries) != len(lines) {
		t.Fatalf("sink got %d entries, the files hold %d", len(sink.entries), len(lines))
	}
	prev := Genesis
	for i, e := range sink.entries {
		if e.Prev != prev {
			t.Fatalf("sink entry %d: prev %s, want %s", i, e.Prev, prev)
		}
		c := *e
		c.Hash = ""
		obj, err := marshalCompact(&c)
		if err != nil {
			t.Fatal(err)
		}
		line, hash, err := seal(nil, obj)
		if err != nil {
			t.Fatal(err)
		}
		if hash != e.Hash || !bytes.Equal(line, lines[i]) {
			t.Fatalf("sink entry %d re-marshals to\n%s\nfile has\n%s", i, line, lines[i])
		}
		prev = e.Hash
	}
}

func TestFilesOrderAndNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		"audit-20250302T000000.000Z.log", "audit-20250301T235959.999Z.log", currentName,
		"audit-2025.log", "audit-20250301T235959.999Z.log.gz", "other.log", "audit.lock",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "audit-20250301T235959.999Z.log"),
		filepath.Join(dir, "audit-20250302T000000.000Z.log"),
		filepath.Join(dir, currentName),
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Files = %v, want %v", got, want)
	}
}

func BenchmarkWrite(b *testing.B) {
	w := openTest(b, b.TempDir(), WriterOptions{})
	defer w.Close()
	base := testEntry(7)
	b.ReportAllocs()
	for b.Loop() {
		e := *base
		if err := w.Write(&e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkWriteParallel(b *testing.B) {
	w := openTest(b, b.TempDir(), WriterOptions{})
	defer w.Close()
	base := testEntry(7)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := *base
			if err := w.Write(&e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkWriteRequestBody includes redacting a small request body.
func BenchmarkWriteRequestBody(b *testing.B) {
	w := openTest(b, b.TempDir(), WriterOptions{})
	defer w.Close()
	base := testEntry(7)
	base.Level = LevelRequest
	body := json.RawMessage(`{"job":{"name":"web","count":3,"env":{"MODE":"prod"}},"password":"hunter2"}`)
	b.ReportAllocs()
	for b.Loop() {
		e := *base
		e.Request = body
		if err := w.Write(&e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
