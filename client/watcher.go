package client

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// allocPollWait is how long one long poll for allocations may block.
const allocPollWait = 30 * time.Second

// longPoll repeats a blocking query against the managers until ctx ends
// or handle returns false, handing handle each answer. Failures back off
// (jittered, up to 15 s) and are logged as "watch <what> failed"; an index
// going backwards (another manager answered from older state, or the
// cluster was restored) starts the queries over from 0.
func (a *Agent) longPoll(ctx context.Context, log hclog.Logger, what string, wait time.Duration,
	fetch func(c *api.Client, q *api.QueryOptions) (*api.QueryMeta, error), handle func() bool) {
	var index uint64
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		var meta *api.QueryMeta
		err := a.withManagerCtx(ctx, func(c *api.Client) error {
			var err error
			meta, err = fetch(c, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("watch "+what+" failed; retrying", "error", err, "in", backoff)
			sleepCtx(ctx, jitter(backoff))
			backoff = min(2*backoff, 15*time.Second)
			continue
		}
		backoff = 500 * time.Millisecond
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		if !handle() {
			return
		}
	}
}

// watchAllocs long-polls the node's allocations and reconciles the runners
// with each answer. The first answer is matched with the containers that
// survived an agent restart before any runner starts, so a running task is
// re-attached rather than started twice.
func (a *Agent) watchAllocs(ctx context.Context) {
	first := true
	var allocs []*structs.Allocation
	a.longPoll(ctx, a.logger, "allocations", allocPollWait, func(c *api.Client, q *api.QueryOptions) (*api.QueryMeta, error) {
		var meta *api.QueryMeta
		var err error
		allocs, meta, err = c.NodeAgent().Allocations(ctx, q)
		return meta, err
	}, func() bool {
		if first {
			restore, err := a.allocs.reattach(ctx, allocs)
			if err != nil {
				return false // ctx ended
			}
			first = false
			a.allocs.reconcile(allocs, restore)
			return true
		}
		a.allocs.reconcile(allocs, nil)
		return true
	})
}
