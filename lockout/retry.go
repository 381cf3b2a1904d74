package lockout

import (
	"errors"
	"time"
)

// ErrLocked is matched (errors.Is) by Check's error when a key is locked.
var ErrLocked = errors.New("lockout: locked")

// ErrThrottled is matched (errors.Is) by Check's error when a key must
// wait out its delay.
var ErrThrottled = errors.New("lockout: throttled")

// RetryError is the error Check returns for a refused attempt. Until is
// when the attempt would be allowed: the value for an HTTP Retry-After
// header. The message names no key, so it can be shown to the client without
// telling which of user or address is blocked.
type RetryError struct {
	Until  time.Time
	Locked bool // locked rather than only throttled
}

// Error says whether the attempt was locked or throttled and until when,
// rounded up to the second: RFC 3339 drops fractions, and a client told a
// time a moment early would retry into another refusal.
func (e *RetryError) Error() string {
	at := e.Until.Add(time.Second - 1).Truncate(time.Second).UTC().Format(time.RFC3339)
	if e.Locked {
		return "lockout: too many failed attempts, locked until " + at
	}
	return "lockout: too many failed attempts, retry after " + at
}

// Is makes errors.Is(err, ErrLocked) or errors.Is(err, ErrThrottled) true
// according to Locked.
func (e *RetryError) Is(target error) bool {
	return (target == ErrLocked && e.Locked) || (target == ErrThrottled && !e.Locked)
}
