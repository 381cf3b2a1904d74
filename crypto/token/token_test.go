package token

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

// withSum appends the right checksum, to build tokens that fail on
// something other than the checksum.
func withSum(body string) string {
	return fmt.Sprintf("%s_%08x", body, crc32.ChecksumIEEE([]byte(body)))
}

const random = "abcdefghijklmnopqrstuvwxyz234567"

func TestRoundTrip(t *testing.T) {
	for _, kind := range []string{"admin", "session", "sa"} {
		tok, err := New(kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != len("hive_")+len(kind)+1+32+1+8 {
			t.Errorf("token %q has the wrong length", tok)
		}
		got, err := Parse(tok)
		if err != nil || got != kind {
			t.Fatalf("Parse(%q) = %q, %v", tok, got, err)
		}
	}
	a, _ := New("sa")
	b, _ := New("sa")
	if a == b {
		t.Error("two tokens are equal")
	}
	for _, kind := range []string{"", "Admin", "a_b", "a1", strings.Repeat("a", 33)} {
		if _, err := New(kind); err == nil {
			t.Errorf("New(%q) succeeded", kind)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := withSum("hive_admin_" + random)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "does not start with hive_"},
		{"wrong prefix", "hivx_" + good[5:], "does not start with hive_"},
		{"upper-case prefix", "HIVE_" + good[5:], "does not start with hive_"},
		{"missing checksum", "hive_admin_" + random, "2 underscore-separated parts"},
		{"extra part", good + "_x", "4 underscore-separated parts"},
		{"empty kind", withSum("hive__" + random), "kind must be"},
		{"upper-case kind", withSum("hive_Admin_" + random), "kind must be"},
		{"digit in kind", withSum("hive_adm1n_" + random), "kind must be"},
		{"long kind", withSum("hive_" + strings.Repeat("a", 33) + "_" + random), "kind must be"},
		{"short random", withSum("hive_admin_" + random[1:]), "random part must be"},
		{"long random", withSum("hive_admin_" + random + "a"), "random part must be"},
		{"upper-case random", withSum("hive_admin_" + strings.ToUpper(random)), "random part must be"},
		{"random with 1", withSum("hive_admin_1" + random[1:]), "random part must be"},
		{"short checksum", good[:len(good)-1], "checksum must be"},
		{"upper-case checksum", good[:len(good)-8] + strings.ToUpper(good[len(good)-8:]), "checksum"},
		{"non-hex checksum", good[:len(good)-8] + "zzzzzzzz", "checksum must be"},
		{"wrong checksum", good[:len(good)-8] + "00000000", "checksum does not match"},
		{"typo in random", "hive_admin_b" + good[12:], "checksum does not match"},
		{"kind changed", "hive_sa_" + good[len("hive_admin_"):], "checksum does not match"},
		{"trailing newline", good + "\n", "checksum must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Error("err does not wrap ErrMalformed")
			}
			if strings.Contains(err.Error(), random[3:20]) {
				t.Errorf("err %q echoes the token", err)
			}
		})
	}
}

func TestHash(t *testing.T) {
	if !bytes.Equal(Hash("a"), Hash("a")) || bytes.Equal(Hash("a"), Hash("b")) || len(Hash("a")) != 32 {
		t.Error("Hash is not a SHA-256")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(withSum("hive_admin_" + random))
	f.Add("hive_sa__")
	f.Add("hive_")
	f.Fuzz(func(t *testing.T, s string) {
		kind, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !strings.HasPrefix(s, "hive_"+kind+"_") || withSum(s[:len(s)-9]) != s {
			t.Fatalf("Parse(%q) accepted a token with kind %q", s, kind)
		}
	})
}
