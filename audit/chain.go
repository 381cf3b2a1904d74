package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
)

// The line format. An entry marshaled without its hash is an object
// {...,"prev":"<hex>"}; the body is those bytes without the closing brace,
// and the line is
//
//	body + `,"hash":"` + hex(SHA-256(body)) + `"}` + "\n"
//
// Because the hash sits at a fixed distance from the end of the line, the
// verifier finds it without parsing, and every byte before it is hashed:
// changing any byte of a line changes either the body (the hash no longer
// matches), the hash (it no longer matches, or is no longer hex), the
// fixed suffix, or the newline (two lines merge, or one splits, and the
// first of them fails).
const (
	hashKey     = `,"hash":"`
	hashHexLen  = 2 * sha256.Size
	lineTail    = `"}`
	suffixLen   = len(hashKey) + hashHexLen + len(lineTail)
	maxLineSize = 64 << 20 // far above any line the Writer produces (see WriterOptions.MaxBodyBytes)
)

// seal appends the finished line for obj, an entry marshaled with an empty
// Hash, to dst. It returns the extended slice and the line's hash.
func seal(dst, obj []byte) ([]byte, string, error) {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return dst, "", errors.New("marshaled entry is not a JSON object")
	}
	body := obj[:len(obj)-1]
	sum := sha256.Sum256(body)
	var hx [hashHexLen]byte
	hex.Encode(hx[:], sum[:])
	dst = append(dst, body...)
	dst = append(dst, hashKey...)
	dst = append(dst, hx[:]...)
	dst = append(dst, lineTail...)
	dst = append(dst, '\n')
	return dst, string(hx[:]), nil
}

// lineInfo is what the chain needs from a line.
type lineInfo struct {
	Prev   string `json:"prev"`
	Hash   string `json:"hash"`
	Event  string `json:"event"`
	Reason string `json:"reason"`
}

// checkLine checks one line, without its newline, on its own: the hash
// suffix, the hash against the body, and that it is a JSON object with a
// well-formed prev. It returns why the line is bad, or "" when it is good.
// Linking to the previous line is the caller's job.
func checkLine(line []byte) (lineInfo, string) {
	var info lineInfo
	if len(line) == 0 {
		return info, "empty line"
	}
	if len(line) < suffixLen+2 {
		return info, `line is too short to end in ,"hash":"<64 hex digits>"}`
	}
	body, tail := line[:len(line)-suffixLen], line[len(line)-suffixLen:]
	hx := tail[len(hashKey) : len(hashKey)+hashHexLen]
	if !bytes.HasPrefix(tail, []byte(hashKey)) || !bytes.HasSuffix(tail, []byte(lineTail)) || !isHash(hx) {
		return info, `line does not end in ,"hash":"<64 lower-case hex digits>"}`
	}
	sum := sha256.Sum256(body)
	var want [hashHexLen]byte
	hex.Encode(want[:], sum[:])
	if !bytes.Equal(want[:], hx) {
		return info, "hash does not match the line's content: the line was altered"
	}
	if err := json.Unmarshal(line, &info); err != nil {
		return lineInfo{}, "line is not a JSON object: " + err.Error()
	}
	// Only a duplicated key inside the hashed body could make these
	// differ; the Writer never writes one.
	if info.Hash != string(hx) {
		return lineInfo{}, "the hash field is given twice"
	}
	if !isHash([]byte(info.Prev)) {
		return lineInfo{}, "prev is not a 64-digit lower-case hex hash"
	}
	return info, ""
}

func isHash(b []byte) bool {
	if len(b) != hashHexLen {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
