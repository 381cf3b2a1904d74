package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hivesec/hive/client/driver"
)

// logPollInterval is how often a followed log is checked for new data.
const logPollInterval = 250 * time.Millisecond

// logReader reads one stream of a task's rotated log files
// (<dir>/<name>.<stream>.<N>, N increasing; the driver's logger rotates
// them and removes the oldest).
type logReader struct {
	dir, name, stream string
	poll              time.Duration
}

type logFile struct {
	idx  int
	path string
}

// logPos is a read position: file number and offset in it.
type logPos struct {
	idx int
	off int64
}

func (lr *logReader) files() ([]logFile, error) {
	paths, err := driver.LogFiles(lr.dir, lr.name, lr.stream)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	out := make([]logFile, 0, len(paths))
	prefix := lr.name + "." + lr.stream + "."
	for _, p := range paths {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), prefix))
		if err == nil {
			out = append(out, logFile{idx: n, path: p})
		}
	}
	return out, nil
}

// tailStart is the position from which the last n lines follow (all of it
// when n < 0). A final newline does not count as the start of a line.
func tailStart(files []logFile, n int) (logPos, error) {
	if len(files) == 0 {
		return logPos{idx: -1}, nil
	}
	if n < 0 {
		return logPos{idx: files[0].idx}, nil
	}
	last := files[len(files)-1]
	if n == 0 {
		fi, err := os.Stat(last.path)
		if err != nil {
			return logPos{}, err
		}
		return logPos{idx: last.idx, off: fi.Size()}, nil
	}
	const chunk = 32 << 10
	buf := make([]byte, chunk)
	seen, count := false, 0
	for i := len(files) - 1; i >= 0; i-- {
		f, err := os.Open(files[i].path)
		if errors.Is(err, os.ErrNotExist) {
			break // rotated away meanwhile: what is older is gone too
		}
		if err != nil {
			return logPos{}, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return logPos{}, err
		}
		end := fi.Size()
		for end > 0 {
			start := max(0, end-chunk)
			b := buf[:end-start]
			if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
				f.Close()
				return logPos{}, err
			}
			for j := len(b) - 1; j >= 0; j-- {
				if !seen {
					seen = true
					if b[j] == '\n' {
						continue
					}
				}
				if b[j] == '\n' {
					count++
					if count == n {
						f.Close()
						return logPos{idx: files[i].idx, off: start + int64(j) + 1}, nil
					}
				}
			}
			end = start
		}
		f.Close()
	}
	return logPos{idx: files[0].idx}, nil
}

// copyFrom writes everything after pos to w and returns the new position
// and the bytes written. If pos's file was rotated away, reading resumes
// at the oldest file still there.
func copyFrom(files []logFile, pos logPos, w io.Writer) (logPos, int64, error) {
	var total int64
	for _, lf := range files {
		if lf.idx < pos.idx {
			continue
		}
		off := int64(0)
		if lf.idx == pos.idx {
			off = pos.off
		}
		f, err := os.Open(lf.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return pos, total, err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return pos, total, err
		}
		n, err := io.Copy(w, f)
		f.Close()
		total += n
		pos = logPos{idx: lf.idx, off: off + n}
		if err != nil {
			return pos, total, err
		}
	}
	return pos, total, nil
}

// serve writes the log to w, then follows it if asked until ctx ends, or
// the task is dead and nothing more arrives (the logger drains a dead
// task's pipes for a moment after the exit).
func (lr *logReader) serve(ctx context.Context, w io.Writer, tail int, follow bool, dead func() bool) error {
	poll := lr.poll
	if poll == 0 {
		poll = logPollInterval
	}
	flush := func() {
		if rw, ok := w.(http.ResponseWriter); ok {
			_ = http.NewResponseController(rw).Flush()
		}
	}
	files, err := lr.files()
	if err != nil {
		return err
	}
	pos, err := tailStart(files, tail)
	if err != nil {
		return err
	}
	pos, _, err = copyFrom(files, pos, w)
	if err != nil {
		return err
	}
	flush()
	if !follow {
		return nil
	}
	deadPolls := 0
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		wasDead := dead()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		files, err := lr.files()
		if err != nil {
			return err
		}
		var n int64
		pos, n, err = copyFrom(files, pos, w)
		if err != nil {
			return err
		}
		if n > 0 {
			flush()
		}
		if wasDead {
			deadPolls++
			if deadPolls >= 2 && n == 0 {
				return nil
			}
		}
	}
}
