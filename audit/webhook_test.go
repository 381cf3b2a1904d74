package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is a webhook endpoint that records what it accepts and can be
// told to fail or stall.
type receiver struct {
	mu       sync.Mutex
	entries  []Entry
	requests int
	headers  []http.Header
	fail     func(n int) int // status for request n (1-based); 0 means 200
	stall    chan struct{}   // if set, handlers wait on it
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.stall != nil {
		select {
		case <-rc.stall:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	rc.headers = append(rc.headers, r.Header.Clone())
	if rc.fail != nil {
		if code := rc.fail(rc.requests); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	var batch []Entry
	if r.Header.Get("Content-Type") == "application/x-ndjson" {
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var e Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			batch = append(batch, e)
		}
	} else if err := json.Unmarshal(body, &batch); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.entries = append(rc.entries, batch...)
}

func (rc *receiver) snapshot() (entries []Entry, requests int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Entry(nil), rc.entries...), rc.requests
}

func sendN(h *Webhook, n int) {
	for i := range n {
		h.Send(testEntry(i))
	}
}

func checkOrder(t *testing.T, got []Entry, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("receiver got %d entries, want %d", len(got), n)
	}
	for i, e := range got {
		if e.RequestID != testEntry(i).RequestID {
			t.Fatalf("entry %d is %s, want %s", i, e.RequestID, testEntry(i).RequestID)
		}
	}
}

func TestWebhookDeliversOverTLS(t *testing.T) {
	for _, ndjson := range []bool{false, true} {
		rc := &receiver{}
		srv := httptest.NewTLSServer(rc)
		h := NewWebhook(srv.URL+"/audit", WebhookOptions{
			Client:      srv.Client(), // trusts the test CA
			BearerToken: "sink-credential",
			Header:      http.Header{"X-Cluster": {"hive-test"}},
			NDJSON:      ndjson,
			BatchSize:   16,
		})
		sendN(h, 50)
		if err := h.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		srv.Close()
		got, requests := rc.snapshot()
		checkOrder(t, got, 50)
		if requests < 4 {
			t.Errorf("%d requests for 50 entries in batches of at most 16", requests)
		}
		for _, hd := range rc.headers {
			if hd.Get("Authorization") != "Bearer sink-credential" || hd.Get("X-Cluster") != "hive-test" {
				t.Fatalf("headers %v lack the bearer token or the custom header", hd)
			}
		}
		if st := h.Stats(); st.Delivered != 50 || st.Dropped != 0 || st.Failed != 0 {
			t.Fatalf("Stats = %+v", st)
		}
	}
}

func TestWebhookRetriesAfterServerErrors(t *testing.T) {
	rc := &receiver{fail: func(n int) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	h := NewWebhook(srv.URL, WebhookOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 5})
	h.Send(testEntry(0))
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, requests := rc.snapshot()
	checkOrder(t, got, 1)
	if requests != 4 {
		t.Fatalf("%d requests, want 3 failures and a success", requests)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	for _, c := range []struct {
		status, maxAttempts, wantRequests int
	}{
		{http.StatusServiceUnavailable, 3, 3}, // retried up to the bound
		{http.StatusBadRequest, 3, 1},         // permanent: not retried
	} {
		rc := &receiver{fail: func(int) int { return c.status }}
		srv := httptest.NewServer(rc)
		h := NewWebhook(srv.URL, WebhookOptions{MinBackoff: time.Millisecond, MaxAttempts: c.maxAttempts})
		h.Send(testEntry(0))
		// Let it give up on its own before Close.
		for deadline := time.Now().Add(5 * time.Second); h.Stats().Failed == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if err := h.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		srv.Close()
		if _, requests := rc.snapshot(); requests != c.wantRequests {
			t.Errorf("status %d: %d requests, want %d", c.status, requests, c.wantRequests)
		}
		if st := h.Stats(); st.Failed != 1 || st.Delivered != 0 {
			t.Errorf("status %d: Stats = %+v, want 1 failed", c.status, st)
		}
	}
}

func TestWebhookDropsWhenQueueFull(t *testing.T) {
	rc := &receiver{stall: make(chan struct{})}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	h := NewWebhook(srv.URL, WebhookOptions{QueueSize: 4, BatchSize: 2})
	start := time.Now()
	const n = 200
	sendN(h, n)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Send blocked: %d sends took %v", n, d)
	}
	st := h.Stats()
	// At most the queue plus one batch in flight can be held.
	if st.Dropped < n-4-2 {
		t.Fatalf("Stats = %+v, want at least %d dropped", st, n-6)
	}
	close(rc.stall)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st = h.Stats()
	if st.Delivered+st.Dropped != n || st.Failed != 0 {
		t.Fatalf("Stats = %+v, want delivered + dropped = %d", st, n)
	}
	got, _ := rc.snapshot()
	if uint64(len(got)) != st.Delivered {
		t.Fatalf("receiver got %d, Stats say %d delivered", len(got), st.Delivered)
	}
	h.Send(testEntry(0)) // after Close: counted, not queued, no panic
	if h.Stats().Dropped != st.Dropped+1 {
		t.Fatal("Send after Close was not counted as dropped")
	}
}

func TestWebhookCloseFlushes(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	h := NewWebhook(srv.URL, WebhookOptions{BatchSize: 10, CloseTimeout: 5 * time.Second})
	sendN(h, 300)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, _ := rc.snapshot()
	checkOrder(t, got, 300)
}

func TestWebhookCloseDeadline(t *testing.T) {
	rc := &receiver{stall: make(chan struct{})} // never answers
	srv := httptest.NewServer(rc)
	defer func() { close(rc.stall); srv.Close() }()
	h := NewWebhook(srv.URL, WebhookOptions{CloseTimeout: 200 * time.Millisecond})
	sendN(h, 5)
	start := time.Now()
	err := h.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v with a 200ms deadline", d)
	}
	if err == nil || h.Stats().Failed != 5 {
		t.Fatalf("Close = %v, Stats = %+v; want an error and 5 failed", err, h.Stats())
	}
}

// Entries that went through a Writer to a Webhook can be chain-checked by
// the receiver: re-marshaling gives the hashes in the file.
func TestWriterToWebhook(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	h := NewWebhook(srv.URL, WebhookOptions{})
	w := openTest(t, t.TempDir(), WriterOptions{Sinks: []Sink{h}})
	writeN(t, w, 0, 25)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := rc.snapshot()
	if len(got) != 26 {
		t.Fatalf("receiver got %d entries, want 26", len(got))
	}
	prev := Genesis
	for i, e := range got {
		want := e.Hash
		e.Hash = ""
		obj, err := marshalCompact(&e)
		if err != nil {
			t.Fatal(err)
		}
		_, hash, err := seal(nil, obj)
		if err != nil || hash != want || e.Prev != prev {
			t.Fatalf("entry %d does not chain: hash %s, recomputed %s, prev %s, want %s", i, want, hash, e.Prev, prev)
		}
		prev = want
	}
}
