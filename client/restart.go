package client

import (
	"time"

	"github.com/hivesec/hive/structs"
)

// restartTracker applies a task's restart policy, as Nomad's: at most
// Attempts restarts within Interval, Delay before each; when they are used
// up, mode "fail" gives up and mode "delay" waits until the interval that
// began with the first counted restart is over, then starts counting again.
// An Interval of zero never resets the count.
type restartTracker struct {
	policy structs.RestartPolicy
	start  time.Time // beginning of the current interval
	count  int       // restarts counted in it
}

// restartDecision is what to do after a failed run.
type restartDecision struct {
	Restart bool
	Wait    time.Duration
	// Exhausted: the attempts of this interval are used up (for mode delay
	// Wait then lasts until the interval ends).
	Exhausted bool
}

// next decides after a failure at now.
func (r *restartTracker) next(now time.Time) restartDecision {
	p := r.policy
	if r.start.IsZero() || (p.Interval > 0 && !now.Before(r.start.Add(p.Interval))) {
		r.start, r.count = now, 0
	}
	r.count++
	if r.count <= p.Attempts {
		return restartDecision{Restart: true, Wait: p.Delay}
	}
	if p.Mode != structs.RestartModeDelay {
		return restartDecision{Exhausted: true}
	}
	wait := p.Delay
	if p.Interval > 0 {
		wait = max(r.start.Add(p.Interval).Sub(now), p.Delay)
	}
	// The next failure after this wait starts a new interval.
	r.start, r.count = time.Time{}, 0
	return restartDecision{Restart: true, Wait: wait, Exhausted: true}
}

// allocStatus derives an allocation's client status from its tasks':
// failed when any task failed for good, complete when every task is dead,
// running once every task has started (a task waiting to restart or one
// that finished successfully keeps the allocation running), else pending.
func allocStatus(tasks []*structs.Task, states map[string]*structs.TaskState) string {
	allDead, allStarted := true, true
	for _, t := range tasks {
		ts := states[t.Name]
		if ts == nil {
			return structs.AllocPending
		}
		if ts.Failed {
			return structs.AllocFailed
		}
		if ts.State != structs.TaskDead {
			allDead = false
		}
		if ts.StartedAt.IsZero() && ts.State != structs.TaskDead {
			allStarted = false
		}
	}
	switch {
	case allDead:
		return structs.AllocComplete
	case allStarted:
		return structs.AllocRunning
	}
	return structs.AllocPending
}
