package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Redacted replaces every value Redact and RedactToken remove.
const Redacted = "[redacted]"

// sensitiveKeys are matched as substrings of lower-cased JSON keys. The
// list is deliberately broad ("key" also hits "keys" and "api_key", "data"
// hits a secret's "data" map): an audit entry that loses a harmless field
// costs little, one that keeps a secret value cannot be taken back.
var sensitiveKeys = []string{
	"password", "passwd", "secret", "token", "value", "values",
	"data", "key", "private", "credential", "unlock",
}

func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range sensitiveKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Redact returns body with the value of every object key that names a
// secret (see sensitiveKeys) replaced by "[redacted]", at any depth, and
// every token-shaped string passed through RedactToken. A body that is not
// a single JSON value becomes {"redacted":"non-json body of N bytes"}: it
// cannot be searched for secrets, so none of it is kept. An empty body
// gives nil.
func Redact(body []byte) json.RawMessage {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber() // keep numbers exactly as sent
	var v any
	if err := dec.Decode(&v); err != nil {
		return nonJSON(len(body))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nonJSON(len(body)) // trailing data after the value
	}
	out, err := marshalCompact(redactValue(v))
	if err != nil {
		return nonJSON(len(body))
	}
	return out
}

func nonJSON(n int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"redacted":"non-json body of %d bytes"}`, n))
}

func redactValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if sensitiveKey(k) {
				out[RedactToken(k)] = Redacted
			} else {
				out[RedactToken(k)] = redactValue(x)
			}
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = redactValue(x)
		}
		return v
	case string:
		return RedactToken(v)
	}
	return v
}

// marshalCompact marshals without escaping <, > and &, which keeps paths
// and queries readable in the log.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// RedactToken replaces what looks like a Hive credential inside s: an API
// token hive_<kind>_<random>_<crc> becomes hive_<kind>_[redacted], a join
// token HIVE1-<pin>-<secret> becomes HIVE1-[redacted]. It matches loosely,
// so mistyped and truncated tokens are caught too; an identifier that
// happens to look like hive_word_word is redacted as well.
func RedactToken(s string) string {
	if !strings.Contains(s, "hive_") && !containsJoinPrefix(s) {
		return s // the common case, without allocating
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if n, kindEnd := apiTokenAt(s, i); n > 0 {
			b.WriteString(s[i : kindEnd+1])
			b.WriteString(Redacted)
			i += n
			continue
		}
		if n := joinTokenAt(s, i); n > 0 {
			b.WriteString(s[i : i+5])
			b.WriteString("-" + Redacted)
			i += n
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// apiTokenAt reports whether an API token starts at s[i]: "hive_", one or
// more lower-case letters (the kind), "_", then at least one token
// character. It returns the token's length and the index of the '_' after
// the kind.
func apiTokenAt(s string, i int) (n, kindEnd int) {
	if !strings.HasPrefix(s[i:], "hive_") {
		return 0, 0
	}
	k := i + len("hive_")
	for k < len(s) && s[k] >= 'a' && s[k] <= 'z' {
		k++
	}
	if k == i+len("hive_") || k+1 >= len(s) || s[k] != '_' || !tokenChar(s[k+1]) {
		return 0, 0
	}
	end := k + 1
	for end < len(s) && tokenChar(s[end]) {
		end++
	}
	return end - i, k
}

// joinTokenAt reports the length of a join token starting at s[i], in any
// case, or 0.
func joinTokenAt(s string, i int) int {
	const p = "hive1-"
	if len(s)-i <= len(p) || !strings.EqualFold(s[i:i+len(p)], p) {
		return 0
	}
	end := i + len(p)
	for end < len(s) && (tokenChar(s[end]) || s[end] == '-') {
		end++
	}
	if end == i+len(p) {
		return 0
	}
	return end - i
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// containsJoinPrefix reports whether s contains "hive1-" in any case. It
// looks for the "1-" first so that the usual string costs one Index call.
func containsJoinPrefix(s string) bool {
	for off := 0; ; {
		j := strings.Index(s[off:], "1-")
		if j < 0 {
			return false
		}
		j += off
		if j >= 4 && strings.EqualFold(s[j-4:j], "hive") {
			return true
		}
		off = j + 2
	}
}
