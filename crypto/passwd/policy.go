package passwd

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinPasswordLen is the fewest characters (Unicode code points, so a
// non-Latin password is not penalised for its UTF-8 size) CheckStrength
// accepts. Length is the one rule that reliably adds guessing cost; following
// NIST SP 800-63B there are no composition rules, which push users to
// predictable patterns without making passwords stronger.
const MinPasswordLen = 12

// ErrPolicy is wrapped by every error CheckStrength returns, so a caller can
// answer "bad request" without matching message text.
var ErrPolicy = errors.New("passwd: password rejected by policy")

// CheckStrength reports whether password is acceptable as a new password.
// Call it when a password is set, not at login: tightening the policy must
// not lock out existing users. The error says which rule failed and never
// contains the password.
func CheckStrength(password string) error {
	switch {
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrPolicy, MaxPasswordLen)
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return fmt.Errorf("%w: shorter than %d characters", ErrPolicy, MinPasswordLen)
	case strings.TrimFunc(password, unicode.IsSpace) == "":
		return fmt.Errorf("%w: only whitespace", ErrPolicy)
	}
	return nil
}
