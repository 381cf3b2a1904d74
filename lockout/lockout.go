// Package lockout slows down, then locks out, repeated failed logins.
//
// Failures are counted per key; the caller picks the keys for an attempt,
// typically one for the account and one for the source ("user:alice",
// "addr:198.18.0.5"), so that guessing one account from many addresses and
// many accounts from one address are both limited. Key an IPv6 source by its
// /64: one host can own all of it.
//
// With DefaultConfig, for each key:
//
//   - the first 3 attempts (FreeAttempts) are not delayed;
//   - after n ≥ 3 failures the next attempt must wait 1s·2^(n-3) after the
//     latest one (BaseDelay), at most 30s (MaxDelay): 1s, 2s, 4s, 8s, 16s, 30s;
//   - the 10th failure (LockAfter) locks the key for 15 minutes (LockFor),
//     after which it starts afresh;
//   - a failure is forgotten 15 minutes after it happened (Window);
//   - at most 100,000 keys are remembered (MaxKeys); past that the least
//     recently active unlocked key is dropped first, so an attacker has to
//     lock that many keys before a lock can be evicted.
//
// So one key gets at most 10 guesses per 16½ minutes (91s of delays, then
// the lock), about 36 an hour, and a user who mistypes a few times waits a
// second or two, never more than 30s before the lock.
//
// The Limiter is pure bookkeeping: it never sleeps and reads time only from
// the clock it is given, so a refused attempt costs the server nothing and
// tests run on a fake clock.
package lockout

import (
	"container/list"
	"slices"
	"sync"
	"time"
)

// Config sets the limits. A zero or negative field takes its value from
// DefaultConfig, so Config{LockFor: time.Hour} changes only the lock
// duration. (So FreeAttempts cannot be zero: one typo should never cost a
// delay.)
type Config struct {
	FreeAttempts int           // failures allowed before delays start
	LockAfter    int           // failures within Window that lock the key
	BaseDelay    time.Duration // first delay, doubled on each further failure
	MaxDelay     time.Duration // cap on a single delay
	LockFor      time.Duration // how long a lock lasts
	Window       time.Duration // a failure older than this is forgotten
	MaxKeys      int           // keys remembered at once, bounding memory
}

// DefaultConfig returns the limits described in the package doc. They keep
// online guessing to about 36 attempts an hour per key, far too few against
// a 12-character password, while a user who mistypes waits seconds at most.
func DefaultConfig() Config {
	return Config{
		FreeAttempts: 3,
		LockAfter:    10,
		BaseDelay:    time.Second,
		MaxDelay:     30 * time.Second,
		LockFor:      15 * time.Minute,
		Window:       15 * time.Minute,
		// Measured ~0.6 KB per key at worst (nine failure times and an
		// attempt in flight), so ~60 MB when full; far less in practice.
		MaxKeys: 100_000,
	}
}

// pendingTTL is how long an attempt that Check allowed counts while the
// caller has reported neither Failure nor Success: long enough for any
// password check, short enough that a request that died in between (a
// server error) does not hold a user back for long.
const pendingTTL = time.Minute

// Limiter tracks failed attempts per key. It is safe for concurrent use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *entry, in open or locked
	// Most recently active at the front. Keeping locked keys apart lets
	// eviction take unlocked ones first.
	open, locked list.List
}

type entry struct {
	key         string
	fails       []time.Time // within Window, oldest first
	pending     []time.Time // attempts allowed by Check, not yet reported
	lockedUntil time.Time   // zero when not locked
	inLocked    bool        // filed in Limiter.locked rather than open
}

// New returns a Limiter with cfg (zero fields defaulted) that reads the time
// from now, or from time.Now if now is nil.
func New(cfg Config, now func() time.Time) *Limiter {
	def := DefaultConfig()
	setDefault(&cfg.FreeAttempts, def.FreeAttempts)
	setDefault(&cfg.LockAfter, def.LockAfter)
	setDefault(&cfg.BaseDelay, def.BaseDelay)
	setDefault(&cfg.MaxDelay, def.MaxDelay)
	setDefault(&cfg.LockFor, def.LockFor)
	setDefault(&cfg.Window, def.Window)
	setDefault(&cfg.MaxKeys, def.MaxKeys)
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, now: now, keys: make(map[string]*list.Element)}
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Check says whether an attempt on keys may go ahead, and must be called
// before the password is verified. If any key is locked it returns an error
// wrapping ErrLocked; if any key is still in its delay, one wrapping
// ErrThrottled. Either way wait is how long until the attempt would be
// allowed, and the error is a *RetryError with that time.
//
// Report every allowed attempt with Failure or Success: until then it
// counts against its keys as if failed (for at most pendingTTL), so many
// attempts sent at once get no more than the same attempts sent one by one.
func (l *Limiter) Check(keys ...string) (wait time.Duration, err error) {
	now := l.now()
	keys = unique(keys)
	l.mu.Lock()
	defer l.mu.Unlock()

	var until time.Time
	locked := false
	for _, k := range keys {
		e := l.lookup(k, now)
		if e == nil {
			continue
		}
		switch {
		case !e.lockedUntil.IsZero():
			if !locked || e.lockedUntil.After(until) {
				until = e.lockedUntil
			}
			locked = true
		case !locked:
			if t := e.nextAllowed(l.cfg); t.After(until) {
				until = t
			}
		}
	}
	if locked || until.After(now) {
		// Round(0) drops the monotonic reading, which only clutters a
		// printed time once it leaves this package.
		return until.Sub(now), &RetryError{Until: until.Round(0), Locked: locked}
	}
	for _, k := range keys {
		e := l.entry(k, now)
		e.pending = append(e.pending, now)
		l.touch(k)
	}
	return 0, nil
}

// Failure records a failed attempt on each key and reports whether any of
// them is now locked. The failure that reaches LockAfter locks its key;
// failures reported while a key is locked count toward the next lock.
func (l *Limiter) Failure(keys ...string) (locked bool) {
	now := l.now()
	keys = unique(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		e := l.entry(k, now)
		if len(e.pending) > 0 {
			e.pending = e.pending[1:]
		}
		e.fails = append(e.fails, now)
		switch {
		case !e.lockedUntil.IsZero():
			// Keep memory bounded: more than LockAfter cannot matter.
			if len(e.fails) > l.cfg.LockAfter {
				e.fails = e.fails[1:]
			}
		case len(e.fails) >= l.cfg.LockAfter:
			// The lock replaces the count it was earned with, so the key
			// starts afresh when it ends whatever Window is.
			e.lockedUntil = now.Add(l.cfg.LockFor)
			e.fails, e.pending = nil, nil
		}
		locked = locked || !e.lockedUntil.IsZero()
		l.touch(k)
	}
	return locked
}

// Success forgets keys entirely, lifting any lock, after a successful
// login. Pass only the keys the success vouches for: resetting the source
// address key lets anyone with one valid account clear their address's
// count between guesses at other accounts.
func (l *Limiter) Success(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		l.remove(k)
	}
}

// Release ends an allowed attempt on keys without judging them: the
// attempt neither counts as a failure nor resets anything. After a
// successful login the source address key is released, not reset (see
// Success).
func (l *Limiter) Release(keys ...string) {
	keys = unique(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		if e := l.lookup(k, now); e != nil && len(e.pending) > 0 {
			e.pending = e.pending[1:]
		}
	}
}

// Failures returns the number of failures on key that count toward its next
// delay or lock: those within Window, since its last lock.
func (l *Limiter) Failures(key string) int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.lookup(key, now); e != nil {
		return len(e.fails)
	}
	return 0
}

// Locked reports whether key is locked and until when.
func (l *Limiter) Locked(key string) (bool, time.Time) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.lookup(key, now); e != nil && !e.lockedUntil.IsZero() {
		return true, e.lockedUntil.Round(0)
	}
	return false, time.Time{}
}

// nextAllowed is when e's delay ends: BaseDelay·2^(n-FreeAttempts) after
// the latest failure or allowed attempt, capped at MaxDelay, counting
// allowed attempts not yet reported as failures. Zero if there is no delay.
//
// When those unreported attempts could be the ones that lock the key, it
// also waits for the oldest of them to be reported or expire, rather than
// let more attempts race past the lock. This also bounds pending to
// LockAfter entries.
func (e *entry) nextAllowed(cfg Config) time.Time {
	t := e.delayEnd(cfg)
	if len(e.fails)+len(e.pending) >= cfg.LockAfter && len(e.pending) > 0 {
		if p := e.pending[0].Add(pendingTTL); p.After(t) {
			t = p
		}
	}
	return t
}

func (e *entry) delayEnd(cfg Config) time.Time {
	n := len(e.fails) + len(e.pending)
	if n < cfg.FreeAttempts {
		return time.Time{}
	}
	d := cfg.BaseDelay
	for i := cfg.FreeAttempts; i < n && d < cfg.MaxDelay; i++ {
		if d > cfg.MaxDelay/2 { // doubling would pass the cap, or overflow
			d = cfg.MaxDelay
			break
		}
		d *= 2
	}
	d = min(d, cfg.MaxDelay)
	var last time.Time
	if len(e.fails) > 0 {
		last = e.fails[len(e.fails)-1]
	}
	if len(e.pending) > 0 && e.pending[len(e.pending)-1].After(last) {
		last = e.pending[len(e.pending)-1]
	}
	return last.Add(d)
}

// expire drops what has aged out at now and reports whether anything is
// left worth remembering.
func (e *entry) expire(now time.Time, cfg Config) (live bool) {
	if !e.lockedUntil.IsZero() && !now.Before(e.lockedUntil) {
		e.lockedUntil = time.Time{}
	}
	e.fails = dropOlder(e.fails, now, cfg.Window)
	e.pending = dropOlder(e.pending, now, pendingTTL)
	return !e.lockedUntil.IsZero() || len(e.fails) > 0 || len(e.pending) > 0
}

// dropOlder removes the times at least age before now from the sorted ts.
func dropOlder(ts []time.Time, now time.Time, age time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= age {
		i++
	}
	if i == len(ts) {
		return nil // release the backing array
	}
	return ts[i:]
}

// lookup returns key's entry brought up to date at now, or nil if there is
// nothing to remember about key.
func (l *Limiter) lookup(key string, now time.Time) *entry {
	el, ok := l.keys[key]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if !e.expire(now, l.cfg) {
		l.remove(key)
		return nil
	}
	return e
}

// entry returns key's entry brought up to date at now, creating it (and
// making room for it) if needed. The caller must touch it after changing it.
func (l *Limiter) entry(key string, now time.Time) *entry {
	if e := l.lookup(key, now); e != nil {
		return e
	}
	l.makeRoom(now)
	e := &entry{key: key}
	l.keys[key] = l.open.PushFront(e)
	return e
}

// touch marks key as the most recently active and files it under open or
// locked by its state.
func (l *Limiter) touch(key string) {
	el := l.keys[key]
	e := el.Value.(*entry)
	if e.inLocked == !e.lockedUntil.IsZero() {
		l.listOf(e).MoveToFront(el)
		return
	}
	l.listOf(e).Remove(el)
	e.inLocked = !e.inLocked
	l.keys[key] = l.listOf(e).PushFront(e)
}

func (l *Limiter) listOf(e *entry) *list.List {
	if e.inLocked {
		return &l.locked
	}
	return &l.open
}

func (l *Limiter) remove(key string) {
	if el, ok := l.keys[key]; ok {
		delete(l.keys, key)
		l.listOf(el.Value.(*entry)).Remove(el)
	}
}

// makeRoom frees a slot for a new key when MaxKeys are held: first entries
// that have aged out, oldest first, then the least recently active unlocked
// key, and a locked key only when every key is locked.
func (l *Limiter) makeRoom(now time.Time) {
	for _, lst := range []*list.List{&l.open, &l.locked} {
		for el := lst.Back(); el != nil; el = lst.Back() {
			e := el.Value.(*entry)
			if e.expire(now, l.cfg) {
				break
			}
			l.remove(e.key)
		}
	}
	for len(l.keys) >= l.cfg.MaxKeys {
		el := l.open.Back()
		if el == nil {
			el = l.locked.Back()
		}
		l.remove(el.Value.(*entry).key)
	}
}

// unique drops repeated keys so that one attempt counts once per key.
func unique(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}
