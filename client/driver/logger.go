package driver

// Log capture. containerd's runc shim supports "binary" log URIs: for each
// task it starts `<binary> <key> <value>…` as its own child, hands it the
// read ends of the task's stdout and stderr pipes as fds 3 and 4 and a
// readiness pipe as fd 5, and waits for fd 5 to close before starting the
// task. We pass exactly one key, LoggerCommand, so the command line is
// `hive task-logger <json spec>` (map order cannot scramble one pair).
//
// Why this and not FIFOs read by the agent: the logger belongs to the shim,
// not to the agent, so a task keeps logging while the agent is down or
// restarting, and a re-attached task needs no IO re-attachment at all
// (there are no FIFOs to re-open, nothing dangles after an agent crash).
//
// Limits: the logger runs on the host as root (as the shim does), in the
// shim's cgroup, not the task's; if it dies the task's writes to stdout
// fail with EPIPE (usually killing it with SIGPIPE) and nothing restarts
// the logger; rotation cuts at byte counts, not line boundaries; when the
// task is deleted the shim closes the pipes and sends SIGTERM, and we drain
// what is buffered for at most a couple of seconds.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LoggerCommand is the subcommand (first argument) the shim runs the logger
// binary with. cmd/hive must route `hive task-logger SPEC` to RunLogger.
const LoggerCommand = "task-logger"

// logSpec is the logger's one argument, JSON-encoded.
type logSpec struct {
	Dir      string `json:"dir"`
	Name     string `json:"name"`
	MaxBytes int64  `json:"max_bytes"`
	MaxFiles int    `json:"max_files"`
}

func loggerArgs(cfg *TaskConfig) map[string]string {
	b, _ := json.Marshal(logSpec{Dir: cfg.LogDir, Name: cfg.Name, MaxBytes: cfg.LogMaxBytes, MaxFiles: cfg.LogMaxFiles})
	return map[string]string{LoggerCommand: string(b)}
}

// prepareLogs creates the log dir and opens (then closes) both rotators,
// so a bad LogDir fails StartTask with a clear error instead of a task
// whose logger died.
func prepareLogs(cfg *TaskConfig) error {
	if err := os.MkdirAll(cfg.LogDir, 0o750); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		r, err := newRotator(cfg.LogDir, cfg.Name+"."+stream, cfg.LogMaxBytes, cfg.LogMaxFiles)
		if err != nil {
			return fmt.Errorf("log dir: %w", err)
		}
		r.Close()
	}
	return nil
}

// IsLoggerInvocation reports whether args (os.Args) are a shim starting the
// task logger; a main or TestMain that sees it calls RunLogger(args[2]).
func IsLoggerInvocation(args []string) bool {
	return len(args) == 3 && args[1] == LoggerCommand
}

// RunLogger is the task logger's body: copy fds 3 and 4 into rotating
// files until both reach EOF (the task and everything holding its stdio
// exited) or SIGTERM arrives.
func RunLogger(spec string) error {
	var s logSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("task logger: bad spec: %w", err)
	}
	if !filepath.IsAbs(s.Dir) || s.Name == "" || s.MaxBytes <= 0 || s.MaxFiles <= 0 {
		return fmt.Errorf("task logger: bad spec %q", spec)
	}
	// The shim's process group gets terminal signals; only SIGTERM (sent by
	// the shim when the task is deleted) may end us early.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)

	ready := os.NewFile(5, "ready")
	streams := []struct {
		name string
		in   *os.File
	}{{"stdout", os.NewFile(3, "stdout")}, {"stderr", os.NewFile(4, "stderr")}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, st := range streams {
		if _, err := st.in.Stat(); err != nil {
			return fmt.Errorf("task logger: fd for %s is missing (not started by a containerd shim?): %w", st.name, err)
		}
		r, err := newRotator(s.Dir, s.Name+"."+st.name, s.MaxBytes, s.MaxFiles)
		if err != nil {
			return fmt.Errorf("task logger: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			if _, err := io.Copy(r, st.in); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", st.name, err))
				mu.Unlock()
			}
		}()
	}
	ready.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-term:
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// LogFiles lists a task's log files for one stream ("stdout" or "stderr"),
// oldest first: LogDir/<name>.<stream>.<N> with N increasing.
func LogFiles(dir, name, stream string) ([]string, error) {
	idx, err := logIndexes(dir, name+"."+stream)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = filepath.Join(dir, fmt.Sprintf("%s.%s.%d", name, stream, n))
	}
	return out, nil
}

func logIndexes(dir, base string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var idx []int
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
			idx = append(idx, n)
		}
	}
	sort.Ints(idx)
	return idx, nil
}

// rotator writes to dir/base.N, starting a new file N+1 when the current
// one would pass maxBytes and keeping at most maxFiles of them. It resumes
// after the highest existing N, so a restarted task appends.
type rotator struct {
	dir, base string
	maxBytes  int64
	maxFiles  int

	f    *os.File
	idx  int
	size int64
}

func newRotator(dir, base string, maxBytes int64, maxFiles int) (*rotator, error) {
	r := &rotator{dir: dir, base: base, maxBytes: maxBytes, maxFiles: maxFiles}
	idx, err := logIndexes(dir, base)
	if err != nil {
		return nil, err
	}
	if len(idx) > 0 {
		r.idx = idx[len(idx)-1]
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotator) path(n int) string { return filepath.Join(r.dir, fmt.Sprintf("%s.%d", r.base, n)) }

func (r *rotator) open() error {
	f, err := os.OpenFile(r.path(r.idx), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, fi.Size()
	return nil
}

func (r *rotator) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		room := r.maxBytes - r.size
		if room <= 0 {
			if err := r.rotate(); err != nil {
				return written, err
			}
			continue
		}
		chunk := p
		if int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := r.f.Write(chunk)
		written += n
		r.size += int64(n)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (r *rotator) rotate() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	r.idx++
	if err := r.open(); err != nil {
		return err
	}
	idx, err := logIndexes(r.dir, r.base)
	if err != nil {
		return err
	}
	for _, n := range idx {
		if n <= r.idx-r.maxFiles {
			os.Remove(r.path(n))
		}
	}
	return nil
}

func (r *rotator) Close() error { return r.f.Close() }
