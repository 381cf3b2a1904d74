package lockout

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLimiter(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	c := newClock()
	l := New(cfg, c.now)
	t.Cleanup(func() { checkInvariants(t, l) })
	return l, c
}

// checkInvariants checks the bookkeeping that every method must preserve.
func checkInvariants(t *testing.T, l *Limiter) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open.Len() + l.locked.Len(); n != len(l.keys) {
		t.Errorf("lists hold %d entries, map %d", n, len(l.keys))
	}
	if len(l.keys) > l.cfg.MaxKeys {
		t.Errorf("%d keys held, MaxKeys %d", len(l.keys), l.cfg.MaxKeys)
	}
	for k, el := range l.keys {
		e := el.Value.(*entry)
		if e.key != k {
			t.Errorf("map key %q holds entry for %q", k, e.key)
		}
		if len(e.fails) > l.cfg.LockAfter || len(e.pending) > l.cfg.LockAfter {
			t.Errorf("key %q holds %d failures, %d pending; LockAfter %d", k, len(e.fails), len(e.pending), l.cfg.LockAfter)
		}
	}
}

// attempt is one login attempt that fails: Check, then Failure if allowed.
func attempt(l *Limiter, keys ...string) (time.Duration, error) {
	wait, err := l.Check(keys...)
	if err == nil {
		l.Failure(keys...)
	}
	return wait, err
}

func TestFreeAttemptsPass(t *testing.T) {
	l, _ := newLimiter(t, DefaultConfig())
	for i := range 3 {
		if wait, err := attempt(l, "user:alice"); err != nil || wait != 0 {
			t.Fatalf("attempt %d: wait %v, err %v; want free", i+1, wait, err)
		}
	}
	wait, err := l.Check("user:alice")
	if !errors.Is(err, ErrThrottled) || errors.Is(err, ErrLocked) || wait != time.Second {
		t.Fatalf("4th Check = %v, %v; want 1s, ErrThrottled", wait, err)
	}
	if got := l.Failures("user:alice"); got != 3 {
		t.Errorf("Failures = %d, want 3", got)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LockAfter = 100
	l, c := newLimiter(t, cfg)
	s := time.Second
	want := []time.Duration{0, 0, 0, s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s}
	for i, w := range want {
		wait, err := l.Check("user:alice")
		if wait != w || (err != nil) != (w > 0) {
			t.Fatalf("after %d failures: Check = %v, %v; want wait %v", i, wait, err, w)
		}
		if err != nil {
			var re *RetryError
			if !errors.As(err, &re) || re.Locked || !re.Until.Equal(c.now().Add(w)) {
				t.Fatalf("after %d failures: error %#v; want throttled until now+%v", i, err, w)
			}
		}
		if err != nil {
			c.add(wait)
			if _, err := l.Check("user:alice"); err != nil {
				t.Fatalf("after waiting %v: %v", wait, err)
			}
		}
		l.Failure("user:alice")
	}
}

func TestBackoffMeasuredSinceLastFailure(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	for range 5 { // delays 1s then 2s; the next is 4s
		c.add(time.Minute)
		attempt(l, "k")
	}
	c.add(1500 * time.Millisecond)
	if wait, err := l.Check("k"); wait != 2500*time.Millisecond || !errors.Is(err, ErrThrottled) {
		t.Fatalf("Check = %v, %v; want 2.5s, ErrThrottled", wait, err)
	}
}

func TestBackoffNoOverflow(t *testing.T) {
	cfg := Config{FreeAttempts: 1, LockAfter: 1000, BaseDelay: time.Hour, MaxDelay: 1<<63 - 1}
	l, _ := newLimiter(t, cfg)
	for range 200 {
		l.Failure("k")
	}
	wait, err := l.Check("k")
	if !errors.Is(err, ErrThrottled) || wait <= 0 {
		t.Fatalf("Check = %v, %v; want a positive wait", wait, err)
	}
}

// lockKey fails attempts on keys, waiting out each delay, until locked.
func lockKey(t *testing.T, l *Limiter, c *clock, keys ...string) {
	t.Helper()
	for i := 1; ; i++ {
		wait, err := l.Check(keys...)
		if errors.Is(err, ErrLocked) {
			t.Fatalf("locked before failure %d", i)
		}
		if err != nil {
			c.add(wait)
			if _, err := l.Check(keys...); err != nil {
				t.Fatalf("failure %d: Check after waiting: %v", i, err)
			}
		}
		if l.Failure(keys...) {
			if i != l.cfg.LockAfter {
				t.Fatalf("locked at failure %d, want %d", i, l.cfg.LockAfter)
			}
			return
		}
	}
}

func TestLockAfter(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	lockKey(t, l, c, "user:alice")
	lockedAt := c.now()

	wait, err := l.Check("user:alice")
	if !errors.Is(err, ErrLocked) || errors.Is(err, ErrThrottled) || wait != 15*time.Minute {
		t.Fatalf("Check = %v, %v; want 15m, ErrLocked", wait, err)
	}
	var re *RetryError
	if !errors.As(err, &re) || !re.Locked || !re.Until.Equal(lockedAt.Add(15*time.Minute)) {
		t.Fatalf("error %#v; want locked until %v", err, lockedAt.Add(15*time.Minute))
	}
	if strings.Contains(err.Error(), "alice") {
		t.Errorf("error %q names the key", err)
	}
	if ok, until := l.Locked("user:alice"); !ok || !until.Equal(re.Until) {
		t.Errorf("Locked = %v, %v; want true, %v", ok, until, re.Until)
	}
	if ok, _ := l.Locked("user:bob"); ok {
		t.Error("Locked(unrelated key) = true")
	}

	// Still locked a moment before the end, whatever else happens.
	c.add(15*time.Minute - time.Nanosecond)
	if !l.Failure("user:alice") {
		t.Error("Failure on a locked key returned false")
	}
	if _, err := l.Check("user:alice"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check just before the end: %v; want ErrLocked", err)
	}
}

func TestLockExpires(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	lockKey(t, l, c, "user:alice")
	c.add(15 * time.Minute)
	if ok, _ := l.Locked("user:alice"); ok {
		t.Fatal("still locked after LockFor")
	}
	if wait, err := l.Check("user:alice"); err != nil || wait != 0 {
		t.Fatalf("Check after lock = %v, %v; want allowed", wait, err)
	}
	if n := l.Failures("user:alice"); n != 0 {
		t.Errorf("Failures after lock = %d, want 0: a lock starts the key afresh", n)
	}
}

func TestFailuresDuringLockCount(t *testing.T) {
	l, c := newLimiter(t, Config{LockFor: time.Minute})
	lockKey(t, l, c, "k")
	l.Failure("k")
	l.Failure("k")
	c.add(time.Minute)
	if n := l.Failures("k"); n != 2 {
		t.Errorf("Failures = %d, want the 2 made while locked", n)
	}
}

func TestSuccessResets(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	for range 5 {
		c.add(time.Minute)
		attempt(l, "user:alice", "addr:198.18.0.5")
	}
	l.Success("user:alice")
	if n := l.Failures("user:alice"); n != 0 {
		t.Errorf("Failures(user) after Success = %d", n)
	}
	if n := l.Failures("addr:198.18.0.5"); n != 5 {
		t.Errorf("Failures(addr) = %d; Success must reset only the keys given", n)
	}
	if wait, err := l.Check("user:alice"); err != nil || wait != 0 {
		t.Errorf("Check after Success = %v, %v", wait, err)
	}

	lockKey(t, l, c, "user:bob")
	l.Success("user:bob")
	if ok, _ := l.Locked("user:bob"); ok {
		t.Error("Success did not lift the lock")
	}
}

func TestWindowForgets(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	l.Failure("k")
	l.Failure("k")
	l.Failure("k")
	c.add(10 * time.Minute)
	l.Failure("k")
	l.Failure("k")
	if n := l.Failures("k"); n != 5 {
		t.Fatalf("Failures = %d, want 5", n)
	}
	c.add(5*time.Minute - time.Nanosecond)
	if n := l.Failures("k"); n != 5 {
		t.Fatalf("Failures just inside the window = %d, want 5", n)
	}
	c.add(time.Nanosecond)
	if n := l.Failures("k"); n != 2 {
		t.Fatalf("Failures after the first three aged out = %d, want 2", n)
	}
	if wait, err := l.Check("k"); err != nil {
		t.Fatalf("Check with 2 failures in window = %v, %v; want free", wait, err)
	}
	c.add(15 * time.Minute)
	if n := l.Failures("k"); n != 0 {
		t.Fatalf("Failures after the window = %d, want 0", n)
	}
	l.mu.Lock()
	n := len(l.keys)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("%d keys held after everything aged out, want 0", n)
	}
}

// TestConcurrentAttemptsReserve: attempts let through by Check count before
// their outcome is known, so a burst gets only the free attempts.
func TestConcurrentAttemptsReserve(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	allowed := 0
	for range 20 {
		if _, err := l.Check("user:alice"); err == nil {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("%d of a burst allowed, want 3", allowed)
	}
	// Unreported attempts expire, so a request that died in between does
	// not hold the user back for long.
	c.add(pendingTTL)
	if _, err := l.Check("user:alice"); err != nil {
		t.Fatalf("Check after pending attempts expired: %v", err)
	}
}

// TestPendingAtLockBoundary: with one failure left before the lock, a
// second attempt waits for the outcome of the first.
func TestPendingAtLockBoundary(t *testing.T) {
	cfg := DefaultConfig()
	l, c := newLimiter(t, cfg)
	for range cfg.LockAfter - 1 {
		c.add(time.Minute) // past every delay, all within the window
		l.Failure("k")
	}
	c.add(cfg.MaxDelay)
	if _, err := l.Check("k"); err != nil {
		t.Fatalf("last attempt before the lock: %v", err)
	}
	c.add(cfg.MaxDelay)
	if _, err := l.Check("k"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("concurrent attempt at the lock boundary: %v; want ErrThrottled", err)
	}
	if !l.Failure("k") {
		t.Fatal("LockAfter-th failure did not lock")
	}
}

func TestMultipleKeys(t *testing.T) {
	l, c := newLimiter(t, DefaultConfig())
	for range 4 {
		c.add(time.Minute)
		attempt(l, "user:alice", "addr:a")
	}
	// A fresh address does not help against a throttled user, and the
	// longest wait wins.
	if wait, err := l.Check("addr:b", "user:alice"); !errors.Is(err, ErrThrottled) || wait != 2*time.Second {
		t.Fatalf("Check(new addr, throttled user) = %v, %v; want 2s throttled", wait, err)
	}
	lockKey(t, l, c, "user:bob")
	if _, err := l.Check("addr:a", "user:bob"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check(throttled addr, locked user) = %v; want ErrLocked", err)
	}
	// A key repeated in one call counts once.
	l.Failure("user:carol", "user:carol")
	if n := l.Failures("user:carol"); n != 1 {
		t.Errorf("Failures after a repeated key = %d, want 1", n)
	}
	if wait, err := l.Check(); err != nil || wait != 0 {
		t.Errorf("Check() with no keys = %v, %v", wait, err)
	}
}

func TestMaxKeysEviction(t *testing.T) {
	l, c := newLimiter(t, Config{MaxKeys: 100})
	lockKey(t, l, c, "user:victim")
	for i := range 1000 {
		c.add(time.Millisecond)
		l.Failure(fmt.Sprintf("user:u%d", i))
	}
	l.mu.Lock()
	n := len(l.keys)
	l.mu.Unlock()
	if n > 100 {
		t.Fatalf("%d keys held, MaxKeys 100", n)
	}
	if ok, _ := l.Locked("user:victim"); !ok {
		t.Error("a flood of unlocked keys evicted a lock")
	}
	if l.Failures("user:u999") != 1 || l.Failures("user:u950") != 1 {
		t.Error("most recent keys were evicted")
	}
	if l.Failures("user:u0") != 0 {
		t.Error("oldest key was kept")
	}

	// When every key is locked, the oldest lock goes.
	l2, c2 := newLimiter(t, Config{MaxKeys: 3, LockAfter: 1})
	for _, k := range []string{"a", "b", "c", "d"} {
		c2.add(time.Second)
		l2.Failure(k)
	}
	if ok, _ := l2.Locked("a"); ok {
		t.Error("oldest lock kept past MaxKeys")
	}
	for _, k := range []string{"b", "c", "d"} {
		if ok, _ := l2.Locked(k); !ok {
			t.Errorf("lock on %s evicted", k)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	l := New(Config{LockFor: time.Hour}, nil)
	want := DefaultConfig()
	want.LockFor = time.Hour
	if l.cfg != want {
		t.Errorf("cfg = %+v, want %+v", l.cfg, want)
	}
	if _, err := l.Check("k"); err != nil { // the real clock works too
		t.Error(err)
	}
}

func TestRetryError(t *testing.T) {
	until := time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC)
	locked := &RetryError{Until: until, Locked: true}
	throttled := &RetryError{Until: until}
	for _, tc := range []struct {
		err                 error
		isLocked, isThrottl bool
		msg                 string
	}{
		{locked, true, false, "lockout: too many failed attempts, locked until 2026-01-02T03:04:06Z"},
		{fmt.Errorf("login: %w", throttled), false, true, "login: lockout: too many failed attempts, retry after 2026-01-02T03:04:06Z"},
	} {
		if errors.Is(tc.err, ErrLocked) != tc.isLocked || errors.Is(tc.err, ErrThrottled) != tc.isThrottl {
			t.Errorf("%v: Is(ErrLocked) = %v, Is(ErrThrottled) = %v", tc.err, errors.Is(tc.err, ErrLocked), errors.Is(tc.err, ErrThrottled))
		}
		if tc.err.Error() != tc.msg {
			t.Errorf("message %q, want %q (rounded up to the second)", tc.err, tc.msg)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	l, c := newLimiter(t, Config{MaxKeys: 50, LockAfter: 5, BaseDelay: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				user := fmt.Sprintf("user:%d", (g*7+i)%80)
				addr := fmt.Sprintf("addr:%d", i%13)
				switch i % 7 {
				case 0:
					l.Success(user)
				case 1:
					l.Failures(user)
					l.Locked(addr)
				case 2:
					c.add(time.Millisecond)
				}
				if _, err := l.Check(user, addr); err == nil {
					l.Failure(user, addr)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkCheckFailure(b *testing.B) {
	c := newClock()
	l := New(DefaultConfig(), c.now)
	i := 0
	for b.Loop() {
		i++
		c.add(time.Second)
		k := fmt.Sprintf("user:%d", i%200_000)
		if _, err := l.Check(k, "addr:1"); err == nil {
			l.Failure(k)
		}
	}
}

// TestReleaseEndsAttemptWithoutJudging checks that a released attempt
// frees its reservation but neither counts as a failure nor clears the
// failures already counted.
func TestReleaseEndsAttemptWithoutJudging(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := New(Config{}, func() time.Time { return now })
	l.Failure("addr:a")
	for i := range 10 {
		if _, err := l.Check("addr:a"); err != nil {
			t.Fatalf("attempt %d after releases: %v", i, err)
		}
		l.Release("addr:a")
	}
	if n := l.Failures("addr:a"); n != 1 {
		t.Errorf("failures = %d, want the 1 recorded before", n)
	}
	// Unreleased attempts do hold the key back.
	for range 3 {
		if _, err := l.Check("addr:a"); err != nil {
			break
		}
	}
	if _, err := l.Check("addr:a"); err == nil {
		t.Error("attempts never released still let more through without limit")
	}
}
