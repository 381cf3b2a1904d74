package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestTailFilter(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBytes: 3000})
	writeN(t, w, 0, 30)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil || len(files) < 2 {
		t.Fatalf("Files = %v, %v; want several", files, err)
	}
	since := testEntry(10).Time
	cases := []struct {
		name   string
		filter Filter
		want   func(i int) bool // which testEntry(i) should come out
		extra  int              // file-start entries that also match
	}{
		{"all", Filter{}, func(int) bool { return true }, len(files)},
		{"user", Filter{User: "u1"}, func(i int) bool { return i%4 == 1 }, 0},
		{"subject wildcard", Filter{Subject: "user:*"}, func(int) bool { return true }, 0},
		{"decision", Filter{Decision: DecisionDeny}, func(i int) bool { return i%3 == 0 }, 0},
		{"resource", Filter{Resource: "jo*"}, func(int) bool { return true }, 0},
		{"resource miss", Filter{Resource: "secret/*"}, func(int) bool { return false }, 0},
		{"since", Filter{Since: since, Subject: "user:*"}, func(i int) bool { return i >= 10 }, 0},
		{"combined", Filter{User: "u0", Decision: DecisionDeny}, func(i int) bool { return i%4 == 0 && i%3 == 0 }, 0},
		{"event", Filter{Event: EventFileStart}, func(int) bool { return false }, len(files)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			err := Tail(context.Background(), files, c.filter, false, func(e Entry) error {
				got = append(got, e.RequestID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range 30 {
				if c.want(i) {
					want = append(want, testEntry(i).RequestID)
				}
			}
			var ids []string
			for _, id := range got {
				if id != "" {
					ids = append(ids, id)
				}
			}
			if len(got)-len(ids) != c.extra || !equalStrings(ids, want) {
				t.Fatalf("got %v (%d without id), want %v and %d file-start entries", ids, len(got)-len(ids), want, c.extra)
			}
		})
	}

	stop := errors.New("stop")
	n := 0
	err = Tail(context.Background(), files, Filter{}, false, func(Entry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Tail = %v after %d entries, want out's error after 3", err, n)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Follow must deliver every entry exactly once and in order while the log
// rotates under it, including several rotations between two polls.
func TestTailFollowAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBytes: 2500, MaxFiles: 1000})
	writeN(t, w, 0, 5) // history before Tail starts
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- Tail(ctx, files, Filter{Subject: "user:*"}, true, func(e Entry) error {
			mu.Lock()
			got = append(got, e.RequestID)
			mu.Unlock()
			return nil
		})
	}()

	const total = 120
	for i := 5; i < total; i++ {
		if err := w.Write(testEntry(i)); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%40 == 0:
			time.Sleep(3 * tailPoll) // let it catch up now and then
		case i%7 == 0:
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * tailPoll) // anything extra would show up now
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Tail returned %v, want context.Canceled", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, _ := Files(dir)
	if len(rotated) < 10 {
		t.Fatalf("only %d files: the test did not rotate enough", len(rotated))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != total {
		t.Fatalf("Tail delivered %d entries, want %d", len(got), total)
	}
	for i, id := range got {
		if id != testEntry(i).RequestID {
			t.Fatalf("entry %d is %s, want %s", i, id, testEntry(i).RequestID)
		}
	}
}

// A partial line is held until its newline arrives, and a file that
// appears only after Tail started is picked up.
func TestTailFollowPartialLineAndLateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, currentName)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Entry, 10)
	done := make(chan error, 1)
	go func() {
		done <- Tail(ctx, []string{path}, Filter{}, true, func(e Entry) error {
			got <- e
			return nil
		})
	}()
	time.Sleep(tailPoll / 2)

	src := t.TempDir()
	w := openTest(t, src, WriterOptions{})
	writeN(t, w, 0, 1)
	w.Close()
	lines := readLines(t, filepath.Join(src, currentName))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	half := len(lines[1]) / 2
	if _, err := f.Write(append(lines[0], lines[1][:half]...)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Event != EventFileStart {
			t.Fatalf("first entry %+v, want the file-start", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the late file was not picked up")
	}
	select {
	case e := <-got:
		t.Fatalf("got %+v from a partial line", e)
	case <-time.After(3 * tailPoll):
	}
	if _, err := f.Write(lines[1][half:]); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.RequestID != "req-0" {
			t.Fatalf("got %+v, want req-0", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the completed line did not come through")
	}
	cancel()
	<-done
}

func TestTailBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(path, []byte("{\"subject\":\"user:a\"}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := Tail(context.Background(), []string{path}, Filter{}, false, func(Entry) error { n++; return nil })
	if err == nil || n != 1 {
		t.Fatalf("Tail = %v after %d entries, want an error at line 2", err, n)
	}
	if err := Tail(context.Background(), nil, Filter{}, true, nil); err == nil {
		t.Fatal("following no file succeeded")
	}
}
