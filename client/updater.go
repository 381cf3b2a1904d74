package client

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// updateWindow is how long the updater gathers reports before sending: an
// allocation's tasks starting together, or many allocations changing at
// once, become one write (one Raft entry) instead of many.
const updateWindow = 100 * time.Millisecond

// updater batches allocation reports to the managers. Only the latest
// report per allocation is kept: a later state supersedes an unsent one.
type updater struct {
	send   func(ctx context.Context, updates []structs.AllocUpdate) error
	logger hclog.Logger
	window time.Duration

	mu      sync.Mutex
	pending map[string]structs.AllocUpdate
	order   []string // allocation IDs in the order they first became pending
	kick    chan struct{}
	// idle is closed while nothing is pending or in flight, so tests can
	// wait for delivery; push replaces a closed one.
	idle chan struct{}
}

func newUpdater(send func(context.Context, []structs.AllocUpdate) error, logger hclog.Logger) *updater {
	idle := make(chan struct{})
	close(idle)
	return &updater{send: send, logger: logger, window: updateWindow,
		pending: map[string]structs.AllocUpdate{}, kick: make(chan struct{}, 1), idle: idle}
}

// push queues u, replacing an unsent report on the same allocation. The
// caller must not change u's task states afterwards.
func (u *updater) push(up structs.AllocUpdate) {
	u.mu.Lock()
	if _, ok := u.pending[up.ID]; !ok {
		u.order = append(u.order, up.ID)
	}
	select {
	case <-u.idle:
		u.idle = make(chan struct{}) // busy again
	default:
	}
	u.pending[up.ID] = up
	u.mu.Unlock()
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// take removes and returns everything pending, oldest first.
func (u *updater) take() []structs.AllocUpdate {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]structs.AllocUpdate, 0, len(u.order))
	for _, id := range u.order {
		out = append(out, u.pending[id])
	}
	u.pending, u.order = map[string]structs.AllocUpdate{}, nil
	return out
}

// requeue puts back reports that failed to send unless a newer one came.
func (u *updater) requeue(batch []structs.AllocUpdate) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var order []string
	for _, up := range batch {
		if _, newer := u.pending[up.ID]; !newer {
			u.pending[up.ID] = up
			order = append(order, up.ID)
		}
	}
	u.order = append(order, u.order...)
}

// markIdle closes idle if nothing is pending.
func (u *updater) markIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		select {
		case <-u.idle:
		default:
			close(u.idle)
		}
	}
}

// idleCh is closed once every report so far has been delivered (or
// dropped as refused).
func (u *updater) idleCh() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.idle
}

// run sends batches until ctx ends, then tries one last flush.
func (u *updater) run(ctx context.Context) {
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if batch := u.take(); len(batch) > 0 {
				if err := u.deliver(fctx, batch); err != nil {
					u.logger.Warn("could not report allocation states before shutdown", "count", len(batch), "error", err)
				}
			}
			cancel()
			return
		case <-u.kick:
		}
		// Coalesce what arrives within the window.
		select {
		case <-ctx.Done():
			continue
		case <-time.After(u.window):
		}
		batch := u.take()
		if len(batch) == 0 {
			u.markIdle()
			continue
		}
		if err := u.deliver(ctx, batch); err != nil {
			u.logger.Warn("report allocation states failed; retrying", "count", len(batch), "error", err, "retry_in", backoff)
			u.requeue(batch)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			select {
			case u.kick <- struct{}{}:
			default:
			}
			continue
		}
		backoff = time.Second
		u.markIdle()
	}
}

// deliver sends batch. A refusal of the whole batch (a client error, e.g.
// one allocation was deleted meanwhile) is retried one report at a time so
// one bad report does not hold back the others; refused reports are
// dropped, as resending cannot help.
func (u *updater) deliver(ctx context.Context, batch []structs.AllocUpdate) error {
	err := u.send(ctx, batch)
	if !isClientError(err) {
		return err
	}
	if len(batch) == 1 {
		u.logger.Warn("manager refused allocation report; dropping it", "alloc", batch[0].ID, "error", err)
		return nil
	}
	for _, up := range batch {
		if err := u.deliver(ctx, []structs.AllocUpdate{up}); err != nil {
			return err
		}
	}
	return nil
}

// isClientError: the manager answered and refused the request itself.
func isClientError(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.StatusCode >= 400 && ae.StatusCode < 500 &&
		ae.StatusCode != http.StatusTooManyRequests && ae.StatusCode != http.StatusRequestTimeout
}

// copyStates deep-copies task states for a report.
func copyStates(in map[string]*structs.TaskState) map[string]*structs.TaskState {
	out := make(map[string]*structs.TaskState, len(in))
	for k, v := range in {
		cp := *v
		out[k] = &cp
	}
	return out
}
