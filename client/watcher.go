package client

import (
	"context"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// allocPollWait is how long one long poll for allocations may block.
const allocPollWait = 30 * time.Second

// watchAllocs long-polls the node's allocations and reconciles the runners
// with each answer. The first answer is matched with the containers that
// survived an agent restart before any runner starts, so a running task is
// re-attached rather than started twice.
func (a *Agent) watchAllocs(ctx context.Context) {
	var index uint64
	first := true
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		var allocs []*structs.Allocation
		var meta *api.QueryMeta
		err := a.withManagerCtx(ctx, func(c *api.Client) error {
			var err error
			allocs, meta, err = c.NodeAgent().Allocations(ctx, &api.QueryOptions{WaitIndex: index, WaitTime: allocPollWait})
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.logger.Warn("watch allocations failed; retrying", "error", err, "in", backoff)
			sleepCtx(ctx, jitter(backoff))
			backoff = min(2*backoff, 15*time.Second)
			continue
		}
		backoff = 500 * time.Millisecond
		// An index going backwards means another manager answered from
		// older state or the cluster was restored: start over.
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		if first {
			restore, err := a.allocs.reattach(ctx, allocs)
			if err != nil {
				return // ctx ended
			}
			first = false
			a.allocs.reconcile(allocs, restore)
			continue
		}
		a.allocs.reconcile(allocs, nil)
	}
}
