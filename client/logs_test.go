package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeLogs creates <dir>/main.stdout.<N> files with the given contents.
func writeLogs(t *testing.T, dir string, first int, contents ...string) {
	t.Helper()
	for i, c := range contents {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("main.stdout.%d", first+i)), []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, dir string, tail int) string {
	t.Helper()
	var b bytes.Buffer
	lr := &logReader{dir: dir, name: "main", stream: "stdout"}
	if err := lr.serve(context.Background(), &b, tail, false, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	// Rotation cuts at byte counts: a line may span two files. Files 0-1
	// were removed by rotation; 10 sorts after 9 numerically.
	writeLogs(t, dir, 2, "l1\nl2\nl", "3\nl4\n", "", "l5\nl6\n")
	writeLogs(t, dir, 10, "l7\n")
	all := "l1\nl2\nl3\nl4\nl5\nl6\nl7\n"
	cases := map[int]string{
		-1: all,
		0:  "",
		1:  "l7\n",
		2:  "l6\nl7\n",
		4:  "l4\nl5\nl6\nl7\n",
		5:  "l3\nl4\nl5\nl6\nl7\n",
		7:  all,
		50: all,
	}
	for n, want := range cases {
		if got := readAll(t, dir, n); got != want {
			t.Errorf("tail %d = %q, want %q", n, got, want)
		}
	}
	// Without a final newline the last partial line counts as a line.
	dir2 := t.TempDir()
	writeLogs(t, dir2, 0, "a\nb\nc")
	if got := readAll(t, dir2, 2); got != "b\nc" {
		t.Errorf("tail 2 of unterminated = %q", got)
	}
	// A big file: tail crosses read chunks.
	dir3 := t.TempDir()
	var big strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&big, "line %05d\n", i)
	}
	writeLogs(t, dir3, 0, big.String())
	if got := readAll(t, dir3, 3); got != "line 19997\nline 19998\nline 19999\n" {
		t.Errorf("tail 3 of big = %q", got)
	}
	// No files at all.
	if got := readAll(t, t.TempDir(), 5); got != "" {
		t.Errorf("empty dir: %q", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogFollow(t *testing.T) {
	dir := t.TempDir()
	writeLogs(t, dir, 0, "old1\nold2\n")
	var dead atomic.Bool
	var out syncBuf
	lr := &logReader{dir: dir, name: "main", stream: "stdout", poll: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- lr.serve(context.Background(), &out, 1, true, dead.Load) }()

	appendTo := func(n int, s string) {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("main.stdout.%d", n)), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o640)
		if err != nil {
			t.Error(err)
			return
		}
		f.WriteString(s)
		f.Close()
	}
	eventually(t, 5*time.Second, "the tail", func() error {
		if out.String() != "old2\n" {
			return errorf("%q", out.String())
		}
		return nil
	})
	appendTo(0, "new1\n")
	// Rotation: a new file, and the old one removed.
	appendTo(1, "new2\n")
	eventually(t, 5*time.Second, "followed lines", func() error {
		if out.String() != "old2\nnew1\nnew2\n" {
			return errorf("%q", out.String())
		}
		return nil
	})
	os.Remove(filepath.Join(dir, "main.stdout.0"))
	appendTo(1, "new3\n")
	dead.Store(true)
	// The logger drains a dead task's pipes right after the exit.
	appendTo(1, "last\n")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after the task died")
	}
	if got := out.String(); got != "old2\nnew1\nnew2\nnew3\nlast\n" {
		t.Errorf("followed %q", got)
	}

	// A follower ends when its caller goes away.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- lr.serve(ctx, &out, 0, true, func() bool { return false }) }()
	time.Sleep(30 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the caller went away")
	}
}
