// Package audit records who did what to the cluster, in a form that shows
// when it was tampered with.
//
// The log is a sequence of JSON lines. Every line carries "prev", the hash
// of the line before it, and ends in "hash", the SHA-256 of its own bytes
// up to that field, so editing, removing, inserting or reordering a line
// breaks the chain at that line and Verify reports where. The chain runs
// across rotated files. An audit Policy decides how much of each request is
// kept, and request and response bodies are always passed through Redact,
// so secret values, passwords and tokens never reach the disk.
//
// A hash chain without a key proves order and integrity relative to a known
// head: someone who can rewrite the files can rewrite the whole chain from
// the point of their edit onwards, and dropping whole lines at the end of
// the newest file leaves a shorter chain that still verifies. Ship entries
// off the host (a Webhook sink) or record Result.Head elsewhere to anchor
// it.
package audit

import (
	"encoding/json"
	"fmt"
	"time"
)

// Entry is one audit record. Its JSON form is the line format; the field
// order matters, because the hash covers the marshaled bytes and Verify
// expects "prev" to be the last field before "hash".
type Entry struct {
	Time      time.Time       `json:"time"`
	RequestID string          `json:"request_id"`
	Subject   string          `json:"subject"` // "user:alice", "sa:ns/name", "node:<id>", "anonymous"
	Groups    []string        `json:"groups,omitempty"`
	Source    string          `json:"source"` // remote address
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Action    string          `json:"action"`
	Resource  string          `json:"resource"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Decision  string          `json:"decision"` // DecisionAllow, DecisionDeny or DecisionError
	Reason    string          `json:"reason"`   // the rule or role that decided, or why it was denied
	Status    int             `json:"status"`   // HTTP status
	LatencyMS float64         `json:"latency_ms"`
	Level     Level           `json:"level"`
	Event     string          `json:"event"`
	Request   json.RawMessage `json:"request,omitempty"`  // only at LevelRequest and above
	Response  json.RawMessage `json:"response,omitempty"` // only at LevelRequestResponse
	Prev      string          `json:"prev"`
	// Hash must stay the last field and omitempty: the writer marshals the
	// entry without it and appends it by hand.
	Hash string `json:"hash,omitempty"`
}

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionError = "error"
)

// Events. Callers may use others; these are the ones Hive itself records,
// and EventFileStart and EventChainRestart are written by the Writer.
const (
	EventRequest        = "request"
	EventAuthentication = "authentication"
	EventNodeJoin       = "node-join"
	EventTokenUse       = "token-use"

	// EventFileStart opens every file the Writer creates. Verify accepts a
	// first file whose first prev is not the genesis hash only when its
	// first entry is one of these, so that removing the head of the oldest
	// file is told apart from retention removing whole files.
	EventFileStart = "file-start"
	// EventChainRestart opens a new chain after the Writer found the end of
	// the existing log broken; its Reason says what was wrong.
	EventChainRestart = "chain-restart"
)

// Genesis is the prev of the first entry of a chain.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Level is how much of a request the audit log keeps.
type Level uint8

// Levels, in increasing detail; comparisons between them are meaningful.
const (
	LevelNone            Level = iota // not recorded
	LevelMetadata                     // who, what, when, decision
	LevelRequest                      // and the (redacted) request body
	LevelRequestResponse              // and the (redacted) response body
)

var levelNames = [...]string{"none", "metadata", "request", "request-response"}

// String returns the level's name as written in policies and entries.
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel parses the names String returns.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("audit: unknown level %q: use none, metadata, request or request-response", s)
}

// MarshalText writes the level's name, so entries read "level":"metadata".
func (l Level) MarshalText() ([]byte, error) {
	if int(l) >= len(levelNames) {
		return nil, fmt.Errorf("audit: invalid level %d", uint8(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText parses a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
