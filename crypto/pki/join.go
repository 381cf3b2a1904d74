package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// Join token format, fixed so tokens can be checked before any network I/O:
//
//	HIVE1-<pin>-<secret>
//
// pin is Fingerprint of the CA certificate: 52 characters of A-Z and 2-7.
// secret is 16 random bytes as 26 characters of a-z and 2-7 (lower-case
// base32, no padding). Neither alphabet contains '-', so the token splits
// unambiguously, and the two cases let a reader tell pin from secret.
const (
	joinTokenPrefix = "HIVE1"
	secretBytes     = 16
	// SecretLength is the length of a join secret.
	SecretLength = 26
)

const joinTokenShape = "expected HIVE1-<52-char CA pin>-<26-char secret>"

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrBadJoinToken is wrapped by every ParseJoinToken error, so callers can
// tell a mistyped token from a network or server failure.
var ErrBadJoinToken = errors.New("join token is malformed")

// JoinToken is a parsed join token. Secret is a credential: do not log it.
type JoinToken struct {
	Pin    string
	Secret string
}

// NewJoinSecret returns a fresh 128-bit join secret.
func NewJoinSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pki: cannot generate join secret: %w", err)
	}
	return secretEncoding.EncodeToString(b), nil
}

// FormatJoinToken builds the token string a user passes to "hive join".
func FormatJoinToken(pin, secret string) string {
	return joinTokenPrefix + "-" + pin + "-" + secret
}

// String returns the full token, secret included, for showing to the user
// who asked for it; never pass a JoinToken to a logger.
func (t JoinToken) String() string { return FormatJoinToken(t.Pin, t.Secret) }

// ParseJoinToken strictly parses a join token, ignoring surrounding
// whitespace (a token pasted from a terminal often carries a newline).
// Errors wrap ErrBadJoinToken and never contain the secret.
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return JoinToken{}, joinErr("token is empty")
	}
	parts := strings.Split(s, "-")
	if parts[0] != joinTokenPrefix {
		return JoinToken{}, joinErr("token does not start with HIVE1-")
	}
	if len(parts) != 3 {
		return JoinToken{}, joinErr(fmt.Sprintf("token has %d dash-separated parts, want 3", len(parts)))
	}
	pin, secret := parts[1], parts[2]
	if len(pin) != PinLength {
		return JoinToken{}, joinErr(fmt.Sprintf("CA pin has %d characters, want %d", len(pin), PinLength))
	}
	if !inAlphabet(pin, 'A', 'Z') {
		return JoinToken{}, joinErr("CA pin may contain only A-Z and 2-7")
	}
	if len(secret) != SecretLength {
		return JoinToken{}, joinErr(fmt.Sprintf("secret has %d characters, want %d", len(secret), SecretLength))
	}
	if !inAlphabet(secret, 'a', 'z') {
		return JoinToken{}, joinErr("secret may contain only a-z and 2-7")
	}
	return JoinToken{Pin: pin, Secret: secret}, nil
}

func joinErr(what string) error {
	return fmt.Errorf("join token: %s; %s: %w", what, joinTokenShape, ErrBadJoinToken)
}

// inAlphabet reports whether s uses only base32 characters with letters in
// [lo, hi]. Pin and secret are compared as strings, never decoded, so the
// alphabet and length are all that must hold.
func inAlphabet(s string, lo, hi byte) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < lo || c > hi) && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// HashSecret returns the SHA-256 of a join secret; the server stores only
// this so a leaked Raft snapshot does not leak a usable token.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches reports whether secret hashes to hash, in constant time so
// response timing reveals nothing about the stored hash.
func SecretMatches(hash []byte, secret string) bool {
	return subtle.ConstantTimeCompare(hash, HashSecret(secret)) == 1
}

// CheckPin returns nil if certDER is the CA certificate the token pins. A
// joining node calls it before sending anything, so a man in the middle
// never sees the secret.
func CheckPin(pin string, certDER []byte) error {
	got := Fingerprint(certDER)
	if got != pin {
		return fmt.Errorf("join: CA pin mismatch: token pins %s, server shows %s", pin, got)
	}
	return nil
}
