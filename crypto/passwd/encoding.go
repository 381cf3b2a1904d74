package passwd

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// prefix fixes algorithm and version: Argon2id 1.3 (0x13 = 19) is the only
// variant this package writes, so anything else is not one of its hashes.
const prefix = "$argon2id$v=19$"

// maxEncodedLen is well above the longest hash within bounds (about 210
// bytes); a longer string is rejected before any parsing work.
const maxEncodedLen = 256

// b64 is the PHC format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", prefix,
		p.Memory, p.Iterations, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses a hash made by encode and checks its parameters against the
// bounds. It accepts only the exact form encode writes, so every stored hash
// has one spelling and a tampered one cannot hide behind an equivalent form.
// Errors wrap ErrMalformed and describe the fault, never the salt or key.
func decode(encoded string) (p Params, salt, key []byte, err error) {
	malformed := func(format string, args ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if len(encoded) > maxEncodedLen {
		return malformed("longer than %d bytes", maxEncodedLen)
	}
	rest, ok := strings.CutPrefix(encoded, prefix)
	if !ok {
		return malformed("not an argon2id v=19 hash")
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return malformed("want params$salt$key after the version, got %d fields", len(fields))
	}

	var m, t, th uint32
	params := strings.Split(fields[0], ",")
	if len(params) != 3 {
		return malformed("want params m=,t=,p=")
	}
	for i, f := range []struct {
		name string
		dst  *uint32
	}{{"m", &m}, {"t", &t}, {"p", &th}} {
		v, ok := strings.CutPrefix(params[i], f.name+"=")
		if !ok {
			return malformed("param %d is not %s=", i+1, f.name)
		}
		if *f.dst, ok = parseUint32(v); !ok {
			return malformed("param %s is not a canonical decimal uint32", f.name)
		}
	}
	// Check before narrowing to uint8: p=257 must not wrap to a valid 1.
	if th > maxThreads {
		return malformed("threads %d above %d", th, maxThreads)
	}

	if salt, ok = decodeB64(fields[1]); !ok {
		return malformed("salt is not unpadded base64")
	}
	if key, ok = decodeB64(fields[2]); !ok {
		return malformed("key is not unpadded base64")
	}
	p = Params{Memory: m, Iterations: t, Threads: uint8(th), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.validate(); err != nil {
		return malformed("%v", err)
	}
	return p, salt, key, nil
}

// parseUint32 accepts only digits without a sign or leading zeros, unlike
// strconv alone.
func parseUint32(s string) (uint32, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// decodeB64 decodes s and requires it to be the canonical encoding of the
// result: the decoder alone skips newlines and ignores unused trailing bits.
func decodeB64(s string) ([]byte, bool) {
	b, err := b64.DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}
