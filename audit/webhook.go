package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// WebhookOptions configure a Webhook. Zero values take the defaults.
type WebhookOptions struct {
	// Client sends the requests; set it for custom TLS (a private CA, a
	// client certificate). Default: http.Client with a 10 s timeout.
	Client *http.Client
	// BearerToken, if set, is sent as "Authorization: Bearer <token>".
	BearerToken string
	// Header holds extra request headers.
	Header http.Header
	// NDJSON sends one entry a line (application/x-ndjson) instead of a
	// JSON array.
	NDJSON bool
	// QueueSize bounds the entries waiting to be sent; when it is full,
	// Send drops the entry and counts it. Default 4096.
	QueueSize int
	// BatchSize is the most entries in one request; default 256.
	BatchSize int
	// MaxAttempts bounds the tries of one batch; default 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between tries, which
	// doubles from the one to the other; defaults 250ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// CloseTimeout is how long Close keeps delivering; default 5s.
	CloseTimeout time.Duration
	// Logger reports failed deliveries; default none.
	Logger hclog.Logger
}

func (o WebhookOptions) withDefaults() WebhookOptions {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// WebhookStats counts entries by what became of them.
type WebhookStats struct {
	Delivered uint64 // accepted by the receiver (2xx)
	Dropped   uint64 // not queued: the queue was full or the sink closed
	Failed    uint64 // given up on after MaxAttempts, a permanent error or the close deadline
}

// Webhook is a Sink that POSTs entries in batches to a URL. Send never
// blocks: a slow or absent receiver costs dropped entries (counted in
// Stats), never a stalled API server; the local file stays the record.
type Webhook struct {
	url  string
	safe string // url without credentials, for logs
	opts WebhookOptions
	log  hclog.Logger

	mu     sync.RWMutex // Send holds it shared so Close can shut the queue
	closed bool
	queue  chan *Entry

	ctx      context.Context // ends at the Close deadline
	cancel   context.CancelFunc
	stopping chan struct{}
	done     chan struct{}

	delivered, dropped, failed atomic.Uint64
}

// NewWebhook starts a sink posting to rawURL.
func NewWebhook(rawURL string, opts WebhookOptions) *Webhook {
	opts = opts.withDefaults()
	safe := "(invalid url)"
	if u, err := url.Parse(rawURL); err == nil {
		safe = u.Redacted()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhook{
		url:      rawURL,
		safe:     safe,
		opts:     opts,
		log:      opts.Logger,
		queue:    make(chan *Entry, opts.QueueSize),
		ctx:      ctx,
		cancel:   cancel,
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.run()
	return w
}

// Send queues e for delivery, or drops it if the queue is full. e must not
// be changed afterwards.
func (w *Webhook) Send(e *Entry) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(1)
		return
	}
	select {
	case w.queue <- e:
	default:
		w.dropped.Add(1)
	}
}

// Stats returns the counts so far.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Delivered: w.delivered.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load()}
}

// Close stops taking entries and delivers those queued, giving up at
// CloseTimeout. It reports entries it could not deliver.
func (w *Webhook) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	before := w.failed.Load()
	deadline := time.AfterFunc(w.opts.CloseTimeout, w.cancel)
	close(w.stopping)
	<-w.done
	deadline.Stop()
	w.cancel()
	if n := w.failed.Load() - before; n > 0 {
		return fmt.Errorf("audit: webhook %s: %d entries were not delivered before closing", w.safe, n)
	}
	return nil
}

func (w *Webhook) run() {
	defer close(w.done)
	batch := make([]*Entry, 0, w.opts.BatchSize)
	for {
		select {
		case e := <-w.queue:
			batch = append(batch[:0], e)
		case <-w.stopping:
			// Nothing can be queued any more: drain what is there.
			for {
				batch = w.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				w.deliver(batch)
			}
		}
		w.deliver(w.fill(batch))
	}
}

// fill adds queued entries to batch without waiting, up to BatchSize, so
// batches grow with the load and a lone entry goes out at once.
func (w *Webhook) fill(batch []*Entry) []*Entry {
	for len(batch) < w.opts.BatchSize {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

func (w *Webhook) encode(batch []*Entry) ([]byte, string, error) {
	if !w.opts.NDJSON {
		b, err := marshalCompact(batch)
		return b, "application/json", err
	}
	var buf bytes.Buffer
	for _, e := range batch {
		b, err := marshalCompact(e)
		if err != nil {
			return nil, "", err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), "application/x-ndjson", nil
}

func (w *Webhook) deliver(batch []*Entry) {
	n := uint64(len(batch))
	body, ctype, err := w.encode(batch)
	if err != nil {
		w.failed.Add(n)
		w.log.Error("cannot encode audit entries for webhook", "error", err)
		return
	}
	backoff := w.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		retry, err := w.post(body, ctype)
		if err == nil {
			w.delivered.Add(n)
			return
		}
		if !retry || attempt >= w.opts.MaxAttempts || w.ctx.Err() != nil {
			w.failed.Add(n)
			w.log.Error("audit webhook delivery failed", "url", w.safe, "entries", n, "attempts", attempt, "error", err)
			return
		}
		// Full jitter on the upper half keeps many managers from
		// retrying in step against a recovering receiver.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
}

// post sends one request. retry says whether trying again may help.
func (w *Webhook) post(body []byte, ctype string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for k, vs := range w.opts.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", ctype)
	if w.opts.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+w.opts.BearerToken)
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return !errors.Is(err, context.Canceled), err
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return false, fmt.Errorf("receiver answered %s", resp.Status)
	}
}
