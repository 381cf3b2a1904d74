package audit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File names. Rotated files carry the UTC time of their rotation to the
// millisecond in a fixed-width form, so sorting names sorts them in chain
// order; the Writer never gives a rotated file a time at or before the
// newest existing one, even if the clock steps back.
const (
	currentName   = "audit.log"
	rotatedPrefix = "audit-"
	rotatedSuffix = ".log"
	rotatedLayout = "20060102T150405.000Z"
)

func rotatedName(t time.Time) string {
	return rotatedPrefix + t.UTC().Format(rotatedLayout) + rotatedSuffix
}

// parseRotatedName returns the rotation time in a rotated file's name, and
// false for any other name.
func parseRotatedName(name string) (time.Time, bool) {
	mid, ok := strings.CutPrefix(name, rotatedPrefix)
	if !ok {
		return time.Time{}, false
	}
	if mid, ok = strings.CutSuffix(mid, rotatedSuffix); !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(rotatedLayout, mid)
	if err != nil || t.Format(rotatedLayout) != mid {
		return time.Time{}, false
	}
	return t, true
}

// rotatedFiles returns the names (not paths) of the rotated files in dir,
// oldest first.
func rotatedFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, ok := parseRotatedName(e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Files returns the paths of the audit log files in dir in chain order:
// rotated files oldest first, then audit.log if it exists. This is what
// "hive audit verify" checks when given no files.
func Files(dir string) ([]string, error) {
	names, err := rotatedFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	paths := make([]string, 0, len(names)+1)
	for _, n := range names {
		paths = append(paths, filepath.Join(dir, n))
	}
	cur := filepath.Join(dir, currentName)
	if fi, err := os.Stat(cur); err == nil && fi.Mode().IsRegular() {
		paths = append(paths, cur)
	} else if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return paths, nil
}

// checkTail checks the end of a log file: the last line must be complete
// and sound, and linked to the line before it. It returns the last line's
// hash, or why the tail cannot be continued. An empty file gives "", "".
// Only the end is read, so opening a large log stays cheap; Verify is the
// full check.
func checkTail(path string) (hash, problem string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	lines, complete, err := lastLines(f, fi.Size(), 2)
	if err != nil {
		return "", "", err
	}
	if len(lines) == 0 {
		return "", "", nil
	}
	if !complete {
		return "", "the last line has no newline: a write was cut short or the file was truncated", nil
	}
	last, problem := checkLine(lines[len(lines)-1])
	if problem != "" {
		return "", "last line: " + problem, nil
	}
	if len(lines) == 2 {
		before, problem := checkLine(lines[0])
		if problem != "" {
			return "", "second-to-last line: " + problem, nil
		}
		if last.Prev != before.Hash {
			return "", "the last line does not link to the one before it", nil
		}
	}
	return last.Hash, "", nil
}

// lastLines returns up to n lines from the end of a file of the given size,
// without their newlines, reading backwards in chunks. complete reports
// whether the file ends in a newline.
func lastLines(r io.ReaderAt, size int64, n int) (lines [][]byte, complete bool, err error) {
	if size == 0 {
		return nil, true, nil
	}
	const chunk = 64 << 10
	var buf []byte
	off := size
	for {
		// Stop once buf holds n full lines (n newlines besides a trailing
		// one) or the whole file.
		nl := bytes.Count(buf, []byte{'\n'})
		if len(buf) > 0 && buf[len(buf)-1] == '\n' {
			nl--
		}
		if nl >= n || off == 0 {
			break
		}
		if len(buf) > 2*maxLineSize {
			break // the caller sees a very long, and so bad, line
		}
		step := min(int64(chunk), off)
		off -= step
		b := make([]byte, step, int(step)+len(buf))
		if _, err := r.ReadAt(b, off); err != nil && err != io.EOF {
			return nil, false, err
		}
		buf = append(b, buf...)
	}
	complete = buf[len(buf)-1] == '\n'
	buf = bytes.TrimSuffix(buf, []byte{'\n'})
	all := bytes.Split(buf, []byte{'\n'})
	if len(all) > n {
		all = all[len(all)-n:] // the first piece may be part of a line
	}
	return all, complete, nil
}
