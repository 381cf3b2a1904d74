package scheduler

import (
	"time"

	"github.com/hivesec/hive/structs"
)

// reschedulePolicy returns the group's policy or the default for the job
// type.
func reschedulePolicy(job *structs.Job, tg *structs.TaskGroup) *structs.ReschedulePolicy {
	if tg.Reschedule != nil {
		return tg.Reschedule
	}
	if job.Type == structs.JobTypeBatch {
		return structs.DefaultBatchReschedulePolicy()
	}
	return structs.DefaultServiceReschedulePolicy()
}

// rescheduleAt says whether failed allocation a may be replaced under p and
// from when: ok is false once the attempts allowed within the interval are
// used up. The delay grows with the number of earlier reschedules of the
// allocation's lineage (RescheduleTimes), per the delay function, capped
// by MaxDelay, and counts from when the allocation failed.
func rescheduleAt(a *structs.Allocation, p *structs.ReschedulePolicy, now time.Time) (at time.Time, ok bool) {
	if p == nil || (!p.Unlimited && p.Attempts <= 0) {
		return time.Time{}, false
	}
	if !p.Unlimited {
		recent := 0
		for _, t := range a.RescheduleTimes {
			if p.Interval <= 0 || now.Sub(t) < p.Interval {
				recent++
			}
		}
		if recent >= p.Attempts {
			return time.Time{}, false
		}
	}
	return failedAt(a, now).Add(rescheduleDelay(p, len(a.RescheduleTimes))), true
}

// rescheduleDelay is the delay before the (n+1)th reschedule.
func rescheduleDelay(p *structs.ReschedulePolicy, n int) time.Duration {
	d := p.Delay
	capped := func(d time.Duration) bool { return p.MaxDelay > 0 && d >= p.MaxDelay }
	switch p.DelayFunction {
	case "exponential":
		for i := 0; i < n && !capped(d) && d > 0; i++ {
			d *= 2
		}
	case "fibonacci":
		prev := time.Duration(0)
		for i := 0; i < n && !capped(d) && d > 0; i++ {
			if i == 0 {
				prev = d // the sequence starts delay, delay, 2×delay, 3×delay, 5×delay…
				continue
			}
			prev, d = d, d+prev
		}
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d
}

// failedAt is when the allocation's last task finished, else when it was
// last modified, else now.
func failedAt(a *structs.Allocation, now time.Time) time.Time {
	var t time.Time
	for _, ts := range a.TaskStates {
		if ts != nil && ts.FinishedAt.After(t) {
			t = ts.FinishedAt
		}
	}
	if t.IsZero() {
		t = a.ModifyTime
	}
	if t.IsZero() {
		t = now
	}
	return t
}
