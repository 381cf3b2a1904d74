package structs

import (
	"fmt"
	"regexp"
	"time"
)

// Secrets. A secret is a named map of keys to values in a namespace, kept
// in versions. Each version's values are encrypted with a data key of its
// own, and the data key is wrapped by a root key (package crypto/keyring):
// the state store, Raft and snapshots hold only ciphertext.

// MaxSecretSize bounds one version's values (keys and values together).
const MaxSecretSize = 1 << 20

// DefaultSecretVersions is how many versions a secret keeps by default.
const DefaultSecretVersions = 10

// Secret is a secret's metadata and its encrypted versions.
type Secret struct {
	Namespace   string
	Name        string
	Description string
	Labels      map[string]string
	// Version is the current version; Versions holds the kept ones,
	// oldest first.
	Version  uint64
	Versions []*SecretVersion
	// MaxVersions bounds Versions; 0 means DefaultSecretVersions.
	MaxVersions int
	// ExpiresAt, when set, ends delivery of the secret; RotationPeriod,
	// when set, is how often a generated secret is regenerated (or a
	// user-supplied one raises a "rotation due" event). Generate lists the
	// keys Hive generates, with their lengths.
	ExpiresAt      time.Time
	RotationPeriod time.Duration
	Generate       map[string]int
	// RotationDueAt is when the next rotation is due (zero: never).
	RotationDueAt time.Time
	// ExpiryNoted is set once the expiry event was raised.
	ExpiryNoted bool
	CreatedAt   time.Time
	UpdatedAt   time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Current returns the current version, or nil.
func (s *Secret) Current() *SecretVersion {
	return s.VersionN(s.Version)
}

// VersionN returns version n if it is kept, or nil.
func (s *Secret) VersionN(n uint64) *SecretVersion {
	for _, v := range s.Versions {
		if v.Version == n {
			return v
		}
	}
	return nil
}

// Expired reports whether the secret has expired at now.
func (s *Secret) Expired(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// SecretVersion is one encrypted version of a secret's values: a JSON
// object of key → value, sealed as a keyring envelope.
type SecretVersion struct {
	Version uint64
	// Keys are the names in the version (metadata; never the values).
	Keys           []string
	RootKeyID      string
	WrappedDataKey []byte
	Ciphertext     []byte
	CreatedAt      time.Time
}

// Root key states.
const (
	RootKeyActive   = "active"
	RootKeyRotating = "rotating" // being re-wrapped away from
	RootKeyRetired  = "retired"
)

// RootKey is a keyring root key as stored: wrapped by the unseal key,
// which is never in Raft.
type RootKey struct {
	ID         string
	WrappedKey []byte
	State      string
	CreatedAt  time.Time
	// Rewrapped counts the secret versions moved off this key while it
	// rotates, for `hive operator keyring status`.
	Rewrapped int

	CreateIndex uint64
	ModifyIndex uint64
}

var secretKeyRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// ValidateSecretKey checks a key name inside a secret: it becomes a file
// name under /run/secrets, so no '/' and no leading dot-dot games.
func ValidateSecretKey(k string) error {
	if !secretKeyRE.MatchString(k) || k == "." || k == ".." {
		return fmt.Errorf("invalid secret key %q: use 1-253 letters, digits, '.', '_' and '-'", k)
	}
	return nil
}

// TaskSecret is a task's reference to a secret: where its value goes and
// what happens when it changes.
type TaskSecret struct {
	// Label is the block label (secret "db" { ... }).
	Label string
	// Name is the secret in the job's namespace, Key the key inside it.
	Name string
	Key  string
	// File is a path under /run/secrets (relative), Mode its permission
	// bits, UID/GID its owner. Empty File: no file.
	File string
	Mode uint32
	UID  int
	GID  int
	// Env, when set, is the environment variable given the value at task
	// start.
	Env string
	// ChangeMode is "restart", "signal" or "noop" (default "restart");
	// ChangeSignal is the signal for "signal" (e.g. "SIGHUP").
	ChangeMode   string
	ChangeSignal string
}

// Secret change modes.
const (
	SecretChangeRestart = "restart"
	SecretChangeSignal  = "signal"
	SecretChangeNoop    = "noop"
)

// SecretRequest creates a secret or adds a version. Data holds literal
// values; Generate asks Hive to generate keys of the given lengths.
type SecretRequest struct {
	Description    string            `json:"description,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Data           map[string]string `json:"data,omitempty"`
	Generate       map[string]int    `json:"generate,omitempty"`
	Expires        string            `json:"expires,omitempty"`         // duration from now
	RotationPeriod string            `json:"rotation_period,omitempty"` // duration
	MaxVersions    int               `json:"max_versions,omitempty"`
}

// SecretInfo is a secret's metadata, never its values.
type SecretInfo struct {
	Namespace      string              `json:"namespace"`
	Name           string              `json:"name"`
	Description    string              `json:"description,omitempty"`
	Labels         map[string]string   `json:"labels,omitempty"`
	Version        uint64              `json:"version"`
	Keys           []string            `json:"keys"`
	Versions       []SecretVersionInfo `json:"versions,omitempty"`
	ExpiresAt      time.Time           `json:"expires_at,omitempty"`
	RotationPeriod string              `json:"rotation_period,omitempty"`
	RotationDueAt  time.Time           `json:"rotation_due_at,omitempty"`
	Generated      []string            `json:"generated,omitempty"`
	CreatedAt      time.Time           `json:"created_at"`
	UpdatedAt      time.Time           `json:"updated_at"`
}

// SecretVersionInfo describes one kept version.
type SecretVersionInfo struct {
	Version   uint64    `json:"version"`
	Keys      []string  `json:"keys"`
	RootKeyID string    `json:"root_key_id"`
	CreatedAt time.Time `json:"created_at"`
}

// SecretValue is a revealed version.
type SecretValue struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Version   uint64            `json:"version"`
	Data      map[string]string `json:"data"`
}

// SecretRollbackRequest makes an old version current again (as a new
// version with the same values).
type SecretRollbackRequest struct {
	To uint64 `json:"to"`
}

// NodeSecretsResponse answers a worker's request for the secrets of one
// of its allocations: for each secret name the allocation's tasks
// reference, its current version's values. Index is the state index, for
// blocking queries that wake on a new version.
type NodeSecretsResponse struct {
	AllocID string                 `json:"alloc_id"`
	Secrets map[string]SecretValue `json:"secrets"`
}

// KeyringStatus answers `hive operator keyring status`.
type KeyringStatus struct {
	Sealed bool          `json:"sealed"`
	Keys   []RootKeyInfo `json:"keys"`
	// Pending counts secret versions still wrapped by a rotating key.
	Pending int `json:"pending"`
}

// RootKeyInfo describes a root key (never its bytes).
type RootKeyInfo struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	Versions  int       `json:"versions"` // secret versions it wraps
}

// UnlockRequest gives a locked manager the cluster's unlock key.
type UnlockRequest struct {
	Key string `json:"key"`
}

// UnsealRotateResponse answers an unseal-key rotation. UnlockKey is set
// only for an autolocked cluster, whose operators must keep the new key.
type UnsealRotateResponse struct {
	KeyID     string `json:"key_id"`
	Managers  int    `json:"managers"`
	UnlockKey string `json:"unlock_key,omitempty"`
}
