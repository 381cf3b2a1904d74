package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Sink receives a copy of every entry the Writer records, in chain order,
// after it is written. Send is called with the Writer's lock held, so it
// must not block (queue and return) and must not modify the entry.
type Sink interface {
	Send(e *Entry)
}

// WriterOptions configure a Writer. Zero values take the defaults.
type WriterOptions struct {
	// MaxBytes is the size at which audit.log is rotated; default 64 MiB.
	MaxBytes int64
	// MaxFiles is how many files are kept, audit.log included; default 10.
	// The oldest rotated files beyond it are deleted.
	MaxFiles int
	// SyncEveryWrite fsyncs after every entry. Otherwise a background
	// flusher fsyncs every FlushInterval when something was written, and
	// a crash loses at most that much.
	SyncEveryWrite bool
	// FlushInterval is how often the flusher runs; default 100ms.
	FlushInterval time.Duration
	// MaxBodyBytes bounds a request or response body; a larger one is
	// replaced by a note of its size. Default 256 KiB.
	MaxBodyBytes int
	// Sinks get every entry after it is written.
	Sinks []Sink
	// Logger reports rotation, restarts and fsync failures; default none.
	Logger hclog.Logger
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 10
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 256 << 10
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// ErrClosed is returned by a Writer after Close.
var ErrClosed = errors.New("audit: writer is closed")

// subjectAudit is the subject of the entries the Writer makes itself.
const subjectAudit = "system:audit"

// Writer appends entries to <dir>/audit.log as a hash chain, rotating by
// size. It is safe for concurrent use; entries are chained in the order
// their Write calls take the lock.
type Writer struct {
	dir, path string
	opts      WriterOptions
	log       hclog.Logger
	lock      *os.File

	mu      sync.Mutex
	f       *os.File
	size    int64
	prev    string    // hash of the last entry written
	lastRot time.Time // time in the newest rotated file's name
	dirty   bool      // written since the last fsync
	closed  bool
	failed  error // a write failure that left the file unusable
	syncErr error // from the background flusher, returned by Sync
	buf     bytes.Buffer
	enc     *json.Encoder
	line    []byte

	stop chan struct{}
	done chan struct{}
}

// Open opens the audit log in dir (created 0700 if missing) and continues
// its chain from the last line of audit.log, or of the newest rotated file
// when audit.log is missing or empty. If that last line is broken the
// Writer does not build on it: it moves the file aside as a rotated file,
// so Verify still reports the break, and starts a new chain whose first
// entry is a chain-restart entry saying why.
func Open(dir string, opts WriterOptions) (*Writer, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	// An existing directory keeps its mode: it may be shared, and the
	// files in it are 0600 whatever it is.
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("audit directory is accessible to other users; 0700 is advised", "dir", dir, "mode", fi.Mode().Perm())
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	w := &Writer{
		dir:  dir,
		path: filepath.Join(dir, currentName),
		opts: opts,
		log:  opts.Logger,
		lock: lock,
		prev: Genesis,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	w.enc = json.NewEncoder(&w.buf)
	w.enc.SetEscapeHTML(false) // keeps paths readable; the hash covers whatever bytes are written
	w.mu.Lock()
	err = w.start()
	w.mu.Unlock()
	if err != nil {
		if w.f != nil {
			w.f.Close()
		}
		lock.Close()
		return nil, err
	}
	if opts.SyncEveryWrite {
		close(w.done)
	} else {
		go w.flushLoop()
	}
	return w, nil
}

func lockPath(dir string) string { return filepath.Join(dir, "audit.lock") }

// start finds where the chain goes on and opens audit.log. Called with mu
// held, before the Writer is shared.
func (w *Writer) start() error {
	rotated, err := rotatedFiles(w.dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if len(rotated) > 0 {
		w.lastRot, _ = parseRotatedName(rotated[len(rotated)-1])
	}
	hash, problem, err := checkTail(w.path)
	switch {
	case err != nil && !os.IsNotExist(err):
		return fmt.Errorf("audit: %w", err)
	case err == nil && problem != "":
		name, err := w.moveAside()
		if err != nil {
			return err
		}
		w.log.Warn("audit log ends in a broken line; starting a new chain", "file", name, "problem", problem)
		if err := w.openCurrent(os.O_EXCL); err != nil {
			return err
		}
		w.prunePrev()
		return w.writeLocked(w.marker(EventChainRestart, fmt.Sprintf(
			"%s ended in a broken line (%s); it was kept as %s and a new chain starts here", currentName, problem, name)))
	case err == nil && hash != "":
		if err := w.openCurrent(0); err != nil {
			return err
		}
		fi, err := w.f.Stat()
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		w.size, w.prev = fi.Size(), hash
		w.prunePrev()
		return nil
	}
	// No audit.log, or an empty one (a crash between rotating and
	// writing the new file's first entry): go on from the newest rotated
	// file.
	if err := w.openCurrent(0); err != nil {
		return err
	}
	w.prunePrev()
	if len(rotated) == 0 {
		return w.writeLocked(w.marker(EventFileStart, "new audit log"))
	}
	last := rotated[len(rotated)-1]
	hash, problem, err = checkTail(filepath.Join(w.dir, last))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if problem == "" && hash == "" {
		problem = "the file is empty"
	}
	if problem != "" {
		w.log.Warn("newest rotated audit file ends in a broken line; starting a new chain", "file", last, "problem", problem)
		return w.writeLocked(w.marker(EventChainRestart, fmt.Sprintf(
			"%s ends in a broken line (%s); a new chain starts here", last, problem)))
	}
	w.prev = hash
	return w.writeLocked(w.marker(EventFileStart, "continues from "+last))
}

// openCurrent opens audit.log for appending, creating it 0600; extra adds
// flags such as O_EXCL.
func (w *Writer) openCurrent(extra int) error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|extra, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	// A file made by someone else (or an older umask) may be wider open
	// than the 0600 OpenFile asks for at creation.
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			w.log.Warn("cannot restrict audit log permissions", "file", w.path, "error", err)
		}
	}
	w.f, w.size = f, 0
	return nil
}

// moveAside renames audit.log to a new rotated name and returns the name.
func (w *Writer) moveAside() (string, error) {
	name := w.nextRotatedName()
	if err := os.Rename(w.path, filepath.Join(w.dir, name)); err != nil {
		return "", fmt.Errorf("audit: rotate: %w", err)
	}
	return name, nil
}

func (w *Writer) nextRotatedName() string {
	t := time.Now().UTC().Truncate(time.Millisecond)
	if !t.After(w.lastRot) {
		t = w.lastRot.Add(time.Millisecond)
	}
	for {
		if _, err := os.Lstat(filepath.Join(w.dir, rotatedName(t))); os.IsNotExist(err) {
			break
		}
		t = t.Add(time.Millisecond)
	}
	w.lastRot = t
	return rotatedName(t)
}

// prunePrev deletes the oldest rotated files beyond MaxFiles and returns
// their names.
func (w *Writer) prunePrev() []string {
	names, err := rotatedFiles(w.dir)
	if err != nil {
		w.log.Error("cannot list audit files for retention", "error", err)
		return nil
	}
	var removed []string
	for len(names) > w.opts.MaxFiles-1 {
		if err := os.Remove(filepath.Join(w.dir, names[0])); err != nil {
			w.log.Error("cannot remove old audit file", "file", names[0], "error", err)
			break
		}
		removed = append(removed, names[0])
		names = names[1:]
	}
	return removed
}

func (w *Writer) marker(event, reason string) *Entry {
	return &Entry{Time: time.Now().UTC(), Subject: subjectAudit, Event: event, Level: LevelMetadata, Reason: reason}
}

// Write records e. It fills in Time (when zero), Level (LevelMetadata when
// unset: an entry that reaches the Writer is recorded rather than lost to a
// forgotten field), Prev and Hash; it drops a body the level does not
// include, replaces Request and Response with their redacted forms and
// redacts token-shaped strings in the text fields. Callers that asked the
// Policy and got LevelNone should not call Write.
func (w *Writer) Write(e *Entry) error {
	w.prepare(e) // outside the lock: redaction parses the bodies
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.failed != nil {
		return w.failed
	}
	if err := w.writeLocked(e); err != nil {
		return err
	}
	if w.size >= w.opts.MaxBytes {
		// The entry is in the log, so the caller must not retry it; a
		// failed rotation is tried again at the next write.
		if err := w.rotateLocked(); err != nil {
			w.log.Error("audit log rotation failed", "error", err)
		}
	}
	return nil
}

func (w *Writer) prepare(e *Entry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if e.Level == LevelNone {
		e.Level = LevelMetadata
	}
	if e.Level >= LevelRequest {
		e.Request = w.redactBody(e.Request)
	} else {
		e.Request = nil
	}
	if e.Level >= LevelRequestResponse {
		e.Response = w.redactBody(e.Response)
	} else {
		e.Response = nil
	}
	for _, s := range []*string{&e.RequestID, &e.Subject, &e.Source, &e.Method, &e.Path, &e.Action,
		&e.Resource, &e.Namespace, &e.Name, &e.Decision, &e.Reason, &e.Event} {
		*s = RedactToken(*s)
	}
	cloned := false
	for i, g := range e.Groups {
		if r := RedactToken(g); r != g {
			if !cloned { // the slice is the caller's
				e.Groups, cloned = slices.Clone(e.Groups), true
			}
			e.Groups[i] = r
		}
	}
}

func (w *Writer) redactBody(b json.RawMessage) json.RawMessage {
	if len(b) > w.opts.MaxBodyBytes {
		return json.RawMessage(fmt.Sprintf(`{"redacted":"body of %d bytes is over the %d-byte limit"}`, len(b), w.opts.MaxBodyBytes))
	}
	return Redact(b)
}

// writeLocked chains, seals and appends one entry with a single write.
func (w *Writer) writeLocked(e *Entry) error {
	e.Prev, e.Hash = w.prev, ""
	w.buf.Reset()
	if err := w.enc.Encode(e); err != nil {
		return fmt.Errorf("audit: encode entry: %w", err)
	}
	line, hash, err := seal(w.line[:0], bytes.TrimSuffix(w.buf.Bytes(), []byte("\n")))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	w.line = line
	n, err := w.f.Write(line)
	if err != nil {
		// Take back a partial line so the chain stays whole; if that
		// fails too, stop writing rather than chain onto garbage. The
		// next Open will see the broken tail and restart the chain.
		if n > 0 {
			if terr := w.f.Truncate(w.size); terr != nil {
				w.failed = fmt.Errorf("audit: a failed write left part of an entry in %s that could not be removed (%v); reopen the log: %w", w.path, terr, err)
				return w.failed
			}
		}
		return fmt.Errorf("audit: write %s: %w", w.path, err)
	}
	w.size += int64(n)
	w.prev = hash
	e.Hash = hash
	w.dirty = true
	if w.opts.SyncEveryWrite {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("audit: sync %s: %w", w.path, err)
		}
		w.dirty = false
	}
	if len(w.opts.Sinks) > 0 {
		c := *e
		c.Groups = slices.Clone(e.Groups) // the caller may reuse its slice
		for _, s := range w.opts.Sinks {
			s.Send(&c)
		}
	}
	return nil
}

// rotateLocked renames audit.log aside, starts a new one whose first entry
// links to the old file's last, and applies retention.
func (w *Writer) rotateLocked() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync before rotation: %w", err)
	}
	name, err := w.moveAside()
	if err != nil {
		return err
	}
	old := w.f
	oldSize := w.size
	if err := w.openCurrent(os.O_EXCL); err != nil {
		// Keep appending to the old file (the descriptor still works)
		// under its old name if it can be put back.
		w.f, w.size = old, oldSize
		if rerr := os.Rename(filepath.Join(w.dir, name), w.path); rerr != nil {
			w.log.Error("cannot undo audit rotation", "file", name, "error", rerr)
		}
		return err
	}
	if err := old.Close(); err != nil {
		w.log.Warn("closing rotated audit file", "file", name, "error", err)
	}
	reason := "continues from " + name
	if removed := w.prunePrev(); len(removed) > 0 {
		reason += "; removed by retention: " + strings.Join(removed, ", ")
	}
	w.syncDir()
	w.log.Debug("rotated audit log", "file", name)
	return w.writeLocked(w.marker(EventFileStart, reason))
}

// syncDir makes renames and new files durable.
func (w *Writer) syncDir() {
	d, err := os.Open(w.dir)
	if err != nil {
		return
	}
	if err := d.Sync(); err != nil {
		w.log.Warn("cannot sync audit directory", "dir", w.dir, "error", err)
	}
	d.Close()
}

// Head returns the hash of the last entry written. Recording it outside
// the host anchors the chain against truncation.
func (w *Writer) Head() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.prev
}

// Sync flushes written entries to stable storage. It also reports a
// failure of the background flusher since the last Sync.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	err := w.syncErr
	w.syncErr = nil
	if serr := w.f.Sync(); serr != nil {
		return fmt.Errorf("audit: sync: %w", serr)
	}
	w.dirty = false
	if err != nil {
		return fmt.Errorf("audit: background sync: %w", err)
	}
	return nil
}

func (w *Writer) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.flush()
		}
	}
}

// flush fsyncs without holding the lock, so writers are not held up for
// the duration of a disk flush.
func (w *Writer) flush() {
	w.mu.Lock()
	if !w.dirty || w.closed {
		w.mu.Unlock()
		return
	}
	w.dirty = false
	f := w.f
	w.mu.Unlock()
	// A rotation may close f meanwhile; it synced f first, so ErrClosed
	// loses nothing.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		w.log.Error("audit log fsync failed", "error", err)
		w.mu.Lock()
		w.syncErr = err
		w.mu.Unlock()
	}
}

// Close flushes and closes the log. Sinks are not closed: they belong to
// whoever made them. Close may be called more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done

	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	if err := w.f.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := w.f.Close(); err != nil {
		errs = append(errs, err)
	}
	w.syncDir()
	if err := w.lock.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}
