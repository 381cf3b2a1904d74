package audit

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerifyLine feeds arbitrary bytes to the line checker and to Verify:
// neither may panic, a line the checker accepts must be exactly the line
// seal would write for its body, and Verify may fail only with a
// *BrokenLinkError on a readable file.
func FuzzVerifyLine(f *testing.F) {
	dir := f.TempDir()
	w, err := Open(filepath.Join(dir, "seed"), WriterOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(testEntry(i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, "seed", currentName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, l := range bytes.SplitAfter(seed, []byte("\n")) {
		f.Add(bytes.TrimSuffix(l, []byte("\n")))
	}
	f.Add([]byte(`{"prev":"` + Genesis + `","hash":"` + Genesis + `"}`))
	f.Add([]byte(`,"hash":"` + Genesis + `"}`))
	f.Add([]byte("\n\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		if info, problem := checkLine(data); problem == "" {
			body := data[:len(data)-suffixLen]
			line, hash, err := seal(nil, append(bytes.Clone(body), '}'))
			if err != nil || hash != info.Hash || !bytes.Equal(line, append(bytes.Clone(data), '\n')) {
				t.Fatalf("checkLine accepted %q but seal gives %q (%v)", data, line, err)
			}
		}

		file, err := os.CreateTemp(dir, "fuzz-*.log")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file.Name())
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		file.Close()
		res, err := Verify(file.Name())
		var be *BrokenLinkError
		switch {
		case err == nil:
			if n := bytes.Count(data, []byte("\n")); res.Entries != n {
				t.Fatalf("Verify passed %d entries in %d lines", res.Entries, n)
			}
		case !errors.As(err, &be):
			t.Fatalf("Verify failed with %v, want a *BrokenLinkError", err)
		case be.Line < 1 || be.Line > bytes.Count(data, []byte("\n"))+1:
			t.Fatalf("broken at line %d of a %d-byte input", be.Line, len(data))
		}
	})
}

func TestReadLineLimit(t *testing.T) {
	r := bufio.NewReaderSize(bytes.NewReader([]byte("0123456789\nabc")), 16)
	if l, err := readLine(r, 8); !errors.Is(err, errLineTooLong) {
		t.Fatalf("readLine = %q, %v; want errLineTooLong", l, err)
	}
	r = bufio.NewReaderSize(bytes.NewReader([]byte("0123456789012345678901234\nabc")), 16)
	if l, err := readLine(r, 100); err != nil || string(l) != "0123456789012345678901234\n" {
		t.Fatalf("readLine = %q, %v", l, err)
	}
	if l, err := readLine(r, 100); string(l) != "abc" || err == nil {
		t.Fatalf("readLine at end = %q, %v; want the rest and io.EOF", l, err)
	}
}
