package pki

import (
	"errors"
	"strings"
	"testing"
)

const testPin = "FVYRMQVXE2YEIALCPSU7XLBS6XEFGD5RSA6MJWYCEWDRPEQ2JCAQ"
const testSecret = "abcdefghijklmnopqrstuvwxyz"

func TestJoinTokenRoundTrip(t *testing.T) {
	secret, err := NewJoinSecret()
	if err != nil {
		t.Fatal(err)
	}
	ca := mustCA(t, "c1")
	s := FormatJoinToken(ca.Pin(), secret)
	tok, err := ParseJoinToken("  " + s + "\n")
	if err != nil {
		t.Fatalf("ParseJoinToken(%q): %v", s, err)
	}
	if tok.Pin != ca.Pin() || tok.Secret != secret || tok.String() != s {
		t.Errorf("round trip: got %+v", tok)
	}
	if len(secret) != SecretLength {
		t.Errorf("secret length %d", len(secret))
	}
}

func TestParseJoinTokenErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "empty"},
		{"whitespace only", " \t\n", "empty"},
		{"no prefix", testPin + "-" + testSecret, "does not start with HIVE1-"},
		{"lower-case prefix", "hive1-" + testPin + "-" + testSecret, "does not start with HIVE1-"},
		{"other version", "HIVE2-" + testPin + "-" + testSecret, "does not start with HIVE1-"},
		{"two parts", "HIVE1-" + testPin, "2 dash-separated parts"},
		{"four parts", "HIVE1-" + testPin + "-" + testSecret + "-x", "4 dash-separated parts"},
		{"empty pin", "HIVE1--" + testSecret, "CA pin has 0 characters"},
		{"short pin", "HIVE1-" + testPin[1:] + "-" + testSecret, "CA pin has 51 characters"},
		{"long pin", "HIVE1-" + testPin + "A-" + testSecret, "CA pin has 53 characters"},
		{"lower-case pin", "HIVE1-" + strings.ToLower(testPin) + "-" + testSecret, "CA pin may contain only"},
		{"pin with 1", "HIVE1-1" + testPin[1:] + "-" + testSecret, "CA pin may contain only"},
		{"pin with padding", "HIVE1-" + testPin[:51] + "=-" + testSecret, "CA pin may contain only"},
		{"empty secret", "HIVE1-" + testPin + "-", "secret has 0 characters"},
		{"short secret", "HIVE1-" + testPin + "-" + testSecret[1:], "secret has 25 characters"},
		{"long secret", "HIVE1-" + testPin + "-" + testSecret + "a", "secret has 27 characters"},
		{"upper-case secret", "HIVE1-" + testPin + "-" + strings.ToUpper(testSecret), "secret may contain only"},
		{"secret with 8", "HIVE1-" + testPin + "-8" + testSecret[1:], "secret may contain only"},
		{"inner space", "HIVE1-" + testPin + "-" + testSecret[:10] + " " + testSecret[11:], "secret may contain only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJoinToken(tt.in)
			if err == nil {
				t.Fatal("ParseJoinToken succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "join token: ") {
				t.Errorf("err = %v, want containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrBadJoinToken) {
				t.Errorf("err does not wrap ErrBadJoinToken")
			}
			if !strings.Contains(err.Error(), "expected HIVE1-<52-char CA pin>-<") {
				t.Errorf("err %q does not show the expected shape", err)
			}
			if strings.Contains(err.Error(), testSecret[2:20]) {
				t.Errorf("err %q echoes the secret", err)
			}
		})
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add(FormatJoinToken(testPin, testSecret))
	f.Add(" HIVE1-" + testPin + "-" + testSecret + "\n")
	f.Add("HIVE1--")
	f.Add("HIVE1-" + testPin + "-" + testSecret + "-")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadJoinToken) {
				t.Fatalf("error does not wrap ErrBadJoinToken: %v", err)
			}
			return
		}
		if got := tok.String(); got != strings.TrimSpace(s) {
			t.Fatalf("re-formatted %q, want %q", got, strings.TrimSpace(s))
		}
		again, err := ParseJoinToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("re-parse: %+v, %v", again, err)
		}
	})
}

func TestSecretMatches(t *testing.T) {
	h := HashSecret(testSecret)
	if !SecretMatches(h, testSecret) {
		t.Error("right secret does not match")
	}
	for name, s := range map[string]string{"other": "bbcdefghijklmnopqrstuvwxyz", "empty": "", "prefix": testSecret[:25]} {
		if SecretMatches(h, s) {
			t.Errorf("%s secret matches", name)
		}
	}
	if SecretMatches(nil, testSecret) || SecretMatches(h[:31], testSecret) {
		t.Error("truncated hash matches")
	}
}

func TestCheckPin(t *testing.T) {
	ca := mustCA(t, "c1")
	if err := CheckPin(ca.Pin(), ca.Cert.Raw); err != nil {
		t.Fatalf("CheckPin with the right pin: %v", err)
	}
	other := mustCA(t, "c2")
	err := CheckPin(other.Pin(), ca.Cert.Raw)
	if err == nil {
		t.Fatal("CheckPin with another CA's pin succeeded")
	}
	want := "join: CA pin mismatch: token pins " + other.Pin() + ", server shows " + ca.Pin()
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}
