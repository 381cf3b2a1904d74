// Package token creates and checks API tokens of the form
//
//	hive_<kind>_<random>_<crc32>
//
// kind is 1-32 lower-case letters (such as "admin", "session", "sa"); random
// is 20 random bytes (160 bits) as 32 characters of lower-case base32 (a-z,
// 2-7); crc32 is 8 lower-case hex digits of the IEEE CRC-32 of
// "hive_<kind>_<random>". The prefix lets secret scanners find leaked tokens,
// and the checksum lets Parse reject a mistyped token without a lookup.
// The server stores only Hash(token).
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

const (
	prefix      = "hive_"
	randomBytes = 20
	randomLen   = 32 // base32 of 20 bytes, exactly, without padding
	crcLen      = 8
	maxKindLen  = 32
	shape       = "expected hive_<kind>_<32 random characters>_<8 hex digits>"
)

var randomEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("token is malformed")

// New returns a fresh token of the given kind.
func New(kind string) (string, error) {
	if !validKind(kind) {
		return "", fmt.Errorf("token: kind %q is invalid; use 1-%d lower-case letters", kind, maxKindLen)
	}
	b := make([]byte, randomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: cannot generate random part: %w", err)
	}
	body := prefix + kind + "_" + randomEncoding.EncodeToString(b)
	return fmt.Sprintf("%s_%08x", body, crc32.ChecksumIEEE([]byte(body))), nil
}

// Parse checks the shape and checksum of s and returns its kind. Errors
// wrap ErrMalformed and never contain any part of s, which may be a live
// credential pasted in the wrong place.
func Parse(s string) (kind string, err error) {
	if !strings.HasPrefix(s, prefix) {
		return "", malformed("it does not start with hive_")
	}
	parts := strings.Split(s[len(prefix):], "_")
	if len(parts) != 3 {
		return "", malformed(fmt.Sprintf("it has %d underscore-separated parts after hive_, want 3", len(parts)))
	}
	kind, random, sum := parts[0], parts[1], parts[2]
	if !validKind(kind) {
		return "", malformed(fmt.Sprintf("kind must be 1-%d lower-case letters", maxKindLen))
	}
	if len(random) != randomLen || !isBase32Lower(random) {
		return "", malformed(fmt.Sprintf("random part must be %d characters of a-z and 2-7", randomLen))
	}
	if len(sum) != crcLen || !isLowerHex(sum) {
		return "", malformed(fmt.Sprintf("checksum must be %d lower-case hex digits", crcLen))
	}
	body := s[:len(s)-crcLen-1]
	if fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(body))) != sum {
		return "", malformed("checksum does not match; the token was mistyped or truncated")
	}
	return kind, nil
}

// Hash returns the SHA-256 of a token, the only form the server stores.
// Tokens carry 160 random bits, so a fast unsalted hash is enough.
func Hash(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func malformed(what string) error {
	return fmt.Errorf("token: %s; %s: %w", what, shape, ErrMalformed)
}

func validKind(k string) bool {
	if len(k) == 0 || len(k) > maxKindLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 'a' || k[i] > 'z' {
			return false
		}
	}
	return true
}

func isBase32Lower(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
