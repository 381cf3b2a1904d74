// Package passwd hashes and checks user passwords with Argon2id (RFC 9106).
//
// A hash is stored in the PHC string format that libsodium, the argon2
// reference CLI and most other implementations use:
//
//	$argon2id$v=19$m=<memory KiB>,t=<iterations>,p=<threads>$<salt>$<key>
//
// with salt and key in unpadded standard base64. The parameters travel with
// every hash, so DefaultParams can be raised later without invalidating stored
// hashes: after a successful login, NeedsRehash says when to store a new one.
//
// Verify refuses parameters outside fixed bounds before running Argon2, so a
// tampered hash in the store cannot make one login allocate gigabytes or spin
// for minutes. The bounds do not limit how many logins run at once: each
// Verify with DefaultParams holds about 64 MiB while it runs, so the caller
// must throttle attempts (package lockout) and bound concurrent verifications.
package passwd

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Params are the Argon2id cost parameters and output sizes of one hash.
type Params struct {
	Memory     uint32 // KiB of memory filled per hash
	Iterations uint32 // passes over the memory
	Threads    uint8  // lanes computed in parallel
	SaltLen    uint32 // bytes of random salt
	KeyLen     uint32 // bytes of derived key
}

// DefaultParams are the parameters Hash uses: RFC 9106's second recommended
// option (section 4) unchanged, Argon2id with 64 MiB, 3 passes, 4 lanes, a
// 16-byte salt and a 32-byte key.
//
// Why these: memory is what makes GPU and ASIC guessing expensive, so it gets
// the largest value that keeps one login near 100 ms on a 2-vCPU manager
// (BenchmarkHash: ~95-105 ms with both cores free, up to ~2x while another
// process holds a core). Lanes split the same work rather than add to it, so
// 4 lanes cost an attacker nothing less than 2; measured on 2 cores they are
// as fast as 2, and faster on bigger managers. OWASP's cheaper m=19 MiB,
// t=2, p=1 takes ~27 ms here (BenchmarkHashOWASPMinimum): it would give
// away about 4x of an attacker's cost without need. Memory is the price: 64
// MiB per login in progress, which the lockout throttle keeps rare.
var DefaultParams = Params{
	Memory:     64 * 1024,
	Iterations: 3,
	Threads:    4,
	SaltLen:    16,
	KeyLen:     32,
}

// Bounds on parameters, enforced when hashing and before Verify runs Argon2.
// The upper bounds keep the worst case of a tampered hash to 1 GiB and about
// 5x the work of DefaultParams (0.7-2 s measured here, most of it faulting
// in fresh memory), leaving room to raise the defaults; the lower bounds are RFC 9106's minimums (8 KiB of memory per
// lane, 8-byte salt) and a 16-byte key, below which a match proves little.
const (
	maxMemory     = 1 << 20 // KiB, 1 GiB
	maxIterations = 16
	maxWork       = 1 << 20 // Memory × Iterations, in KiB passes
	maxThreads    = 64
	minSaltLen    = 8
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 64
)

// MaxPasswordLen is the longest password, in bytes, that Hash accepts and
// Verify can match. It bounds the work an attacker can make the server do
// per attempt with a huge password; no real password is longer.
const MaxPasswordLen = 1024

// ErrMalformed is wrapped by Verify's error when the stored hash cannot be
// parsed or its parameters are out of bounds, i.e. it was not made by this
// package or was altered. It never means a wrong password.
var ErrMalformed = errors.New("passwd: malformed hash")

// errPasswordTooLong is returned by Hash; its text gives the limit, never the
// password.
var errPasswordTooLong = fmt.Errorf("passwd: password longer than %d bytes", MaxPasswordLen)

// Hash derives an Argon2id hash of password with DefaultParams and a fresh
// random salt, and returns it in PHC string format.
func Hash(password string) (string, error) {
	return HashWithParams(password, DefaultParams)
}

// HashWithParams is Hash with explicit parameters. It refuses parameters that
// Verify would refuse, so every hash it returns can be checked later.
func HashWithParams(password string, p Params) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", errPasswordTooLong
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("passwd: invalid params: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("passwd: cannot generate salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Threads, p.KeyLen)
	return encode(p, salt, key), nil
}

// Verify reports whether password matches the encoded hash. It returns an
// error wrapping ErrMalformed, and false, if encoded is not a valid hash; a
// wrong password is (false, nil). The comparison runs in constant time.
//
// When the user does not exist, verify against a dummy hash made once with
// the same parameters, so that the response time does not tell an attacker
// which user names are real.
func Verify(password, encoded string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	// Hash never stores a longer password, so it cannot match; refusing it
	// here also keeps a megabyte "password" from costing a full hash.
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether encoded should be replaced by a new hash made
// with p: it is malformed, or any of its parameters differ from p. Differ,
// not fall short: lowering a cost on purpose (say, for smaller managers)
// should migrate stored hashes too. Call it after a successful Verify, while
// the plaintext password is at hand.
func NeedsRehash(encoded string, p Params) bool {
	got, _, _, err := decode(encoded)
	return err != nil || got != p
}

// validate checks p against the bounds; the error names the field and its
// value, which are not secret.
func (p Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("threads %d outside [1, %d]", p.Threads, maxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("memory %d KiB outside [%d, %d] for %d threads", p.Memory, 8*uint32(p.Threads), maxMemory, p.Threads)
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("iterations %d outside [1, %d]", p.Iterations, maxIterations)
	case uint64(p.Memory)*uint64(p.Iterations) > maxWork:
		return fmt.Errorf("memory %d KiB × %d iterations above %d", p.Memory, p.Iterations, maxWork)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d outside [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d outside [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}
