package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// tailPoll is how often a following Tail looks for new lines and
// rotations. Polling, unlike inotify, works the same on every file system
// and costs two stat calls per tick.
const tailPoll = 200 * time.Millisecond

// Filter selects entries for Tail. Empty fields match everything.
type Filter struct {
	Subject  string // the whole subject; '*' is a wildcard ("node:*")
	User     string // a user's name: matches subject "user:<User>"
	Resource string // '*' is a wildcard ("secret/*")
	Decision string
	Event    string
	Since    time.Time // entries at or after this time
}

// Match reports whether e passes the filter.
func (f Filter) Match(e *Entry) bool {
	return (f.Subject == "" || glob(f.Subject, e.Subject)) &&
		(f.User == "" || e.Subject == "user:"+f.User) &&
		(f.Resource == "" || glob(f.Resource, e.Resource)) &&
		(f.Decision == "" || e.Decision == f.Decision) &&
		(f.Event == "" || e.Event == f.Event) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since))
}

// Tail reads the entries of files in order and passes those that match
// filter to out, stopping at the first error out returns. With follow it
// then keeps reading the last file as it grows, and when the log rotates
// (the file at that path is replaced or shrinks) it reads what was added
// to the old file, any rotated files after it, and goes on with the new
// one; it returns when ctx ends, with ctx's error. Tail does not verify
// the chain (see Verify); a complete line that is not an entry is an
// error, a partial last line is a write in progress and is waited for.
func Tail(ctx context.Context, files []string, filter Filter, follow bool, out func(Entry) error) error {
	t := &tailer{ctx: ctx, filter: filter, out: out}
	if len(files) == 0 {
		if follow {
			return errors.New("audit: tail: no file to follow")
		}
		return nil
	}
	n := len(files)
	if follow {
		n-- // the last file is read by follow
	}
	lastRot := ""
	for _, name := range files[:n] {
		if err := t.readAll(name); err != nil {
			return err
		}
		if _, ok := parseRotatedName(filepath.Base(name)); ok && filepath.Base(name) > lastRot {
			lastRot = filepath.Base(name)
		}
	}
	if !follow {
		return nil
	}
	path := files[n]
	if lastRot == "" {
		// Only the current file was asked for: files rotated before now
		// are history, not news.
		names, err := rotatedFiles(filepath.Dir(path))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("audit: tail: %w", err)
		}
		if len(names) > 0 {
			lastRot = names[len(names)-1]
		}
	}
	return t.follow(path, lastRot)
}

type tailer struct {
	ctx    context.Context
	filter Filter
	out    func(Entry) error
}

// source reads complete lines from one open file.
type source struct {
	name     string
	f        *os.File
	r        *bufio.Reader
	line     int    // lines returned so far
	pending  []byte // a partial line read so far
	consumed int64  // bytes of complete lines returned
}

func openSource(name string) (*source, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &source{name: name, f: f, r: bufio.NewReaderSize(f, 64<<10)}, nil
}

// next returns the next complete line, or nil when the rest of the file
// (if any) is a partial line.
func (s *source) next() ([]byte, error) {
	for {
		frag, err := s.r.ReadSlice('\n')
		s.pending = append(s.pending, frag...)
		if len(s.pending) > maxLineSize {
			return nil, fmt.Errorf("audit: tail: %s:%d: %w", s.name, s.line+1, errLineTooLong)
		}
		switch err {
		case nil:
			line := s.pending
			s.pending = nil
			s.line++
			s.consumed += int64(len(line))
			return line, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			return nil, nil // bufio tries the file again on the next call
		default:
			return nil, fmt.Errorf("audit: tail: %w", err)
		}
	}
}

// rewind goes back to the end of the last complete line, or to the start.
func (s *source) rewind(to int64) error {
	if _, err := s.f.Seek(to, io.SeekStart); err != nil {
		return fmt.Errorf("audit: tail: %w", err)
	}
	s.r.Reset(s.f)
	s.pending = nil
	if to == 0 {
		s.line = 0
	}
	s.consumed = to
	return nil
}

// drain passes on every complete line available now.
func (t *tailer) drain(s *source) error {
	for {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		line, err := s.next()
		if err != nil || line == nil {
			return err
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("audit: tail: %s:%d: not an audit entry (run verify): %w", s.name, s.line, err)
		}
		if t.filter.Match(&e) {
			if err := t.out(e); err != nil {
				return err
			}
		}
	}
}

func (t *tailer) readAll(name string) error {
	s, err := openSource(name)
	if err != nil {
		return fmt.Errorf("audit: tail: %w", err)
	}
	defer s.f.Close()
	return t.drain(s)
}

// wait sleeps one poll interval, or until ctx ends.
func (t *tailer) wait() error {
	timer := time.NewTimer(tailPoll)
	defer timer.Stop()
	select {
	case <-t.ctx.Done():
		return t.ctx.Err()
	case <-timer.C:
		return nil
	}
}

func (t *tailer) follow(path, lastRot string) error {
	dir := filepath.Dir(path)
	s, lastRot, err := t.catchUp(dir, path, nil, lastRot)
	if err != nil {
		return err
	}
	defer func() { s.f.Close() }()
	for {
		if err := t.drain(s); err != nil {
			return err
		}
		if err := t.wait(); err != nil {
			return err
		}
		cur, err := s.f.Stat()
		if err != nil {
			return fmt.Errorf("audit: tail: %w", err)
		}
		fi, err := os.Stat(path)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("audit: tail: %w", err)
		}
		if err == nil && os.SameFile(fi, cur) {
			if read := s.consumed + int64(len(s.pending)); fi.Size() < read {
				// Shrunk in place. If only a partial line went (the
				// Writer takes back a failed write), carry on after the
				// last complete line; otherwise start over.
				to := s.consumed
				if fi.Size() < s.consumed {
					to = 0
				}
				if err := s.rewind(to); err != nil {
					return err
				}
			}
			continue
		}
		// Replaced: whatever was written to the old file before the
		// rename is still there to read.
		if err := t.drain(s); err != nil {
			return err
		}
		s.f.Close()
		next, rot, err := t.catchUp(dir, path, cur, lastRot)
		if err != nil {
			return err
		}
		s, lastRot = next, rot
	}
}

// catchUp reads the rotated files newer than lastRot, except old (the file
// just followed, already read), then opens path. If another rotation
// happens meanwhile it goes round again, so no file is skipped.
func (t *tailer) catchUp(dir, path string, old os.FileInfo, lastRot string) (*source, string, error) {
	for {
		names, err := rotatedFiles(dir)
		if err != nil {
			return nil, "", fmt.Errorf("audit: tail: %w", err)
		}
		for _, n := range names {
			if n <= lastRot {
				continue
			}
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && old != nil && os.SameFile(fi, old) {
				lastRot = n
				continue
			}
			if err := t.readAll(p); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // removed by retention while we got here
				}
				return nil, "", err
			}
			lastRot = n
		}
		s, err := openSource(path)
		if errors.Is(err, os.ErrNotExist) {
			if err := t.wait(); err != nil { // between rotation and creation
				return nil, "", err
			}
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("audit: tail: %w", err)
		}
		if names, err = rotatedFiles(dir); err == nil && len(names) > 0 && names[len(names)-1] > lastRot {
			s.f.Close() // rotated again since the listing: read those first
			continue
		}
		return s, lastRot, nil
	}
}
