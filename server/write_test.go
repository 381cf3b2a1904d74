package server

import (
	"testing"
	"time"
)

// TestGather checks who a batch waits for. Timings on a busy machine are
// noisy, so "does not wait" is judged by the fastest of several tries: a
// gather that waits takes at least gatherGap every time.
func TestGather(t *testing.T) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	write := func(queued time.Time) *pendingWrite {
		return &pendingWrite{queued: queued, done: make(chan writeResult, 1)}
	}
	// gather runs one gather with the previous batch of prev writes
	// answered at answeredAt; queue holds the writes already waiting.
	gather := func(prev int, answeredAt time.Time, first *pendingWrite, queue ...*pendingWrite) (int, time.Duration) {
		s := &Server{writes: make(chan *pendingWrite, 16)}
		for _, w := range queue {
			s.writes <- w
		}
		var last answered
		last.set(prev, answeredAt, time.Second) // deadline: gatherMax after answeredAt
		start := time.Now()
		batch := s.gather(first, &last, timer)
		return len(batch), time.Since(start)
	}
	fastest := func(f func() (int, time.Duration), wantLen int) time.Duration {
		t.Helper()
		best := time.Hour
		for range 10 {
			n, took := f()
			if n != wantLen {
				t.Fatalf("gathered %d writes, want %d", n, wantLen)
			}
			best = min(best, took)
		}
		return best
	}

	t.Run("lone writer does not wait", func(t *testing.T) {
		took := fastest(func() (int, time.Duration) {
			now := time.Now()
			return gather(1, now, write(now))
		}, 1)
		if took >= gatherGap {
			t.Errorf("took %s", took)
		}
	})

	t.Run("no recent batch: takes what is queued", func(t *testing.T) {
		took := fastest(func() (int, time.Duration) {
			now := time.Now()
			return gather(64, now.Add(-time.Second), write(now), write(now))
		}, 2)
		if took >= gatherGap {
			t.Errorf("took %s", took)
		}
	})

	t.Run("all answered writers are back", func(t *testing.T) {
		took := fastest(func() (int, time.Duration) {
			answeredAt := time.Now()
			later := answeredAt.Add(time.Nanosecond)
			// A write queued before the previous batch was answered is
			// another caller's: it rides along but does not count.
			return gather(3, answeredAt, write(answeredAt.Add(-time.Millisecond)), write(later), write(later), write(later))
		}, 4)
		if took >= gatherGap {
			t.Errorf("took %s", took)
		}
	})

	t.Run("waits for missing writers, then gives up", func(t *testing.T) {
		answeredAt := time.Now()
		later := answeredAt.Add(time.Nanosecond)
		n, took := gather(4, answeredAt, write(answeredAt.Add(-time.Millisecond)), write(later), write(later), write(later))
		// One expected write never comes: the wait ends gatherGap after
		// the last arrival (allow for a coarse timer on an idle machine),
		// not at gatherMax or later.
		if n != 4 || took < gatherGap || took > 5*time.Millisecond {
			t.Errorf("gathered %d writes after %s, want 4 after about %s", n, took, gatherGap)
		}
	})

	t.Run("takes writers that arrive while it waits", func(t *testing.T) {
		s := &Server{writes: make(chan *pendingWrite, 16)}
		var last answered
		last.set(3, time.Now(), time.Second)
		go func() {
			for range 2 {
				s.writes <- write(time.Now())
			}
		}()
		batch := s.gather(write(time.Now()), &last, timer)
		if len(batch) != 3 {
			t.Errorf("gathered %d writes, want 3", len(batch))
		}
	})
}
