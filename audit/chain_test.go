package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testEntry returns a varied entry so lines differ in length and content.
func testEntry(i int) *Entry {
	decision := DecisionAllow
	if i%3 == 0 {
		decision = DecisionDeny
	}
	return &Entry{
		Time:      time.Date(2025, 3, 1, 12, 0, 0, i*1000, time.UTC),
		RequestID: fmt.Sprintf("req-%d", i),
		Subject:   fmt.Sprintf("user:u%d", i%4),
		Groups:    []string{"ops", fmt.Sprintf("g%d", i%2)},
		Source:    "198.18.0.1:5555",
		Method:    "GET",
		Path:      fmt.Sprintf("/v1/job/web-%d", i),
		Action:    "read",
		Resource:  "job",
		Namespace: "prod",
		Name:      fmt.Sprintf("web-%d", i),
		Decision:  decision,
		Reason:    "role developer & <rule 2>",
		Status:    200,
		LatencyMS: 1.25 * float64(i),
		Event:     EventRequest,
	}
}

func openTest(t testing.TB, dir string, opts WriterOptions) *Writer {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

func writeN(t testing.TB, w *Writer, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := w.Write(testEntry(i)); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
}

// newLog writes n entries (after the file-start entry) to a fresh log and
// returns the path of audit.log.
func newLog(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{})
	writeN(t, w, 0, n)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, currentName)
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wantBroken fails unless err is a *BrokenLinkError at file:line.
func wantBroken(t *testing.T, err error, file string, line int) *BrokenLinkError {
	t.Helper()
	var be *BrokenLinkError
	if !errors.As(err, &be) {
		t.Fatalf("Verify = %v, want a broken link at %s:%d", err, file, line)
	}
	if be.File != file || be.Line != line {
		t.Fatalf("broken at %s:%d (%s), want %s:%d", be.File, be.Line, be.Reason, file, line)
	}
	return be
}

func TestVerifyGoodChain(t *testing.T) {
	path := newLog(t, 20)
	res, err := Verify(path)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Entries != 21 || res.Files != 1 || res.Start != Genesis || res.MidChain {
		t.Fatalf("Result = %+v, want 21 entries (20 + file-start) in 1 file from genesis", res)
	}
	lines := readLines(t, path)
	var last Entry
	if err := json.Unmarshal(lines[len(lines)-1], &last); err != nil {
		t.Fatal(err)
	}
	if res.Head != last.Hash {
		t.Fatalf("Head = %s, want the last line's hash %s", res.Head, last.Hash)
	}
	var first Entry
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if first.Event != EventFileStart || first.Prev != Genesis {
		t.Fatalf("first entry = %+v, want a file-start at genesis", first)
	}
}

// Every single-byte change anywhere in a line, its newline included, must
// be reported at that line.
func TestVerifyDetectsEveryByteFlip(t *testing.T) {
	path := newLog(t, 6)
	orig := readLines(t, path)
	for _, target := range []int{0, 3, len(orig) - 1} { // first, middle, last line
		for pos := range orig[target] {
			for _, mask := range []byte{0x01, 0x20, 0x80} {
				lines := make([][]byte, len(orig))
				copy(lines, orig)
				l := bytes.Clone(orig[target])
				l[pos] ^= mask
				lines[target] = l
				writeLines(t, path, lines)
				_, err := Verify(path)
				var be *BrokenLinkError
				if !errors.As(err, &be) || be.File != path || be.Line != target+1 {
					t.Fatalf("line %d byte %d (%q) ^ %#x: Verify = %v, want broken at line %d",
						target+1, pos, orig[target][pos], mask, err, target+1)
				}
			}
		}
	}
}

func TestVerifyDeletedLine(t *testing.T) {
	path := newLog(t, 8)
	orig := readLines(t, path)
	for del := range orig[:len(orig)-1] { // removing the last line is undetectable by design
		lines := append(append([][]byte{}, orig[:del]...), orig[del+1:]...)
		writeLines(t, path, lines)
		_, err := Verify(path)
		// Removing the first line leaves a first line that continues a
		// chain without being a file-start entry: broken at line 1.
		wantBroken(t, err, path, del+1)
	}
}

func TestVerifySwappedLines(t *testing.T) {
	path := newLog(t, 8)
	orig := readLines(t, path)
	for _, pair := range [][2]int{{0, 1}, {2, 3}, {1, 6}, {4, 8}} {
		lines := append([][]byte{}, orig...)
		lines[pair[0]], lines[pair[1]] = lines[pair[1]], lines[pair[0]]
		writeLines(t, path, lines)
		_, err := Verify(path)
		wantBroken(t, err, path, pair[0]+1)
	}
}

func TestVerifyInsertedAndDuplicatedLine(t *testing.T) {
	path := newLog(t, 5)
	orig := readLines(t, path)
	lines := append(append(append([][]byte{}, orig[:3]...), orig[1]), orig[3:]...)
	writeLines(t, path, lines)
	_, err := Verify(path)
	wantBroken(t, err, path, 4)
}

func TestVerifyTruncated(t *testing.T) {
	path := newLog(t, 5)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	// Cut inside line 4 (1-based), including just before its newline.
	start := len(bytes.Join(lines[:3], nil))
	for _, cut := range []int{start + 1, start + len(lines[3])/2, start + len(lines[3]) - 1} {
		if err := os.WriteFile(path, orig[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(path)
		wantBroken(t, err, path, 4)
	}
	// An empty line is not an entry.
	writeLines(t, path, append(append([][]byte{}, lines[:2]...), []byte("\n"), lines[2]))
	_, err = Verify(path)
	wantBroken(t, err, path, 3)
}

func rotatingLog(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBytes: 2000, MaxFiles: 100})
	writeN(t, w, 0, n)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func TestRotationKeepsChain(t *testing.T) {
	_, files := rotatingLog(t, 40)
	if len(files) < 4 {
		t.Fatalf("got %d files, want rotation to have made at least 4", len(files))
	}
	if filepath.Base(files[len(files)-1]) != currentName {
		t.Fatalf("Files = %v, want audit.log last", files)
	}
	res, err := Verify(files...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Files != len(files) || res.Entries != 40+len(files) || res.MidChain {
		t.Fatalf("Result = %+v, want %d files and %d entries from genesis", res, len(files), 40+len(files))
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// Each file on its own: the first from genesis, the others mid-chain.
	for i, f := range files {
		res, err := Verify(f)
		if err != nil {
			t.Fatalf("Verify(%s): %v", f, err)
		}
		if res.MidChain != (i > 0) {
			t.Fatalf("Verify(%s).MidChain = %v", f, res.MidChain)
		}
	}
}

func TestVerifyMissingOrReorderedFile(t *testing.T) {
	_, files := rotatingLog(t, 40)
	without := append(append([]string{}, files[:2]...), files[3:]...)
	_, err := Verify(without...)
	be := wantBroken(t, err, files[3], 1)
	t.Logf("missing file: %v", be)

	swapped := append([]string{}, files...)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	_, err = Verify(swapped...)
	wantBroken(t, err, swapped[1], 1)

	// Whole lines cut from the end of a rotated file show at the start of
	// the next one.
	lines := readLines(t, files[1])
	writeLines(t, files[1], lines[:len(lines)-1])
	_, err = Verify(files...)
	wantBroken(t, err, files[2], 1)
}

// Retention removes whole files from the front: the rest still verifies,
// but removing the head of the oldest remaining file does not.
func TestVerifyMidChainStart(t *testing.T) {
	_, files := rotatingLog(t, 40)
	res, err := Verify(files[2:]...)
	if err != nil {
		t.Fatalf("Verify without the two oldest files: %v", err)
	}
	if !res.MidChain || res.Start == Genesis {
		t.Fatalf("Result = %+v, want MidChain with a non-genesis start", res)
	}
	lines := readLines(t, files[2])
	writeLines(t, files[2], lines[1:])
	_, err = Verify(files[2:]...)
	wantBroken(t, err, files[2], 1)
}

func TestVerifyErrors(t *testing.T) {
	if _, err := Verify(); err == nil {
		t.Fatal("Verify() with no files succeeded")
	}
	_, err := Verify(filepath.Join(t.TempDir(), "missing.log"))
	var be *BrokenLinkError
	if err == nil || errors.As(err, &be) {
		t.Fatalf("Verify(missing) = %v, want a plain I/O error", err)
	}
}

func TestSealAndCheckLine(t *testing.T) {
	obj := []byte(`{"a":1,"prev":"` + Genesis + `"}`)
	line, hash, err := seal(nil, obj)
	if err != nil {
		t.Fatal(err)
	}
	info, problem := checkLine(bytes.TrimSuffix(line, []byte("\n")))
	if problem != "" || info.Hash != hash || info.Prev != Genesis {
		t.Fatalf("checkLine(seal(...)) = %+v, %q", info, problem)
	}
	for _, bad := range []string{"", "{}", `[1,2]`, `{"prev":"x"}`} {
		if _, p := checkLine([]byte(bad)); p == "" {
			t.Errorf("checkLine(%q) passed", bad)
		}
	}
	if _, _, err := seal(nil, []byte(`[1]`)); err == nil {
		t.Error("seal accepted a non-object")
	}
}
