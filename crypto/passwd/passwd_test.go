package passwd

import (
	"errors"
	"strings"
	"testing"
)

// cheap keeps tests fast; the format and checks are the same as for
// DefaultParams.
var cheap = Params{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const pw = "correct horse battery staple"

func mustHash(t testing.TB, password string, p Params) string {
	t.Helper()
	h, err := HashWithParams(password, p)
	if err != nil {
		t.Fatalf("HashWithParams: %v", err)
	}
	return h
}

func TestHashRoundTrip(t *testing.T) {
	h, err := Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=65536,t=3,p=4$"; !strings.HasPrefix(h, want) {
		t.Errorf("hash %q does not start with %q", h, want)
	}
	ok, err := Verify(pw, h)
	if err != nil || !ok {
		t.Fatalf("Verify(right password) = %v, %v; want true, nil", ok, err)
	}
	h2, err := Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Error("two hashes of one password are equal: salt is not random")
	}
}

func TestHashWithParamsRecordsParams(t *testing.T) {
	p := Params{Memory: 256, Iterations: 2, Threads: 4, SaltLen: 8, KeyLen: 64}
	h := mustHash(t, pw, p)
	got, salt, key, err := decode(h)
	if err != nil {
		t.Fatal(err)
	}
	if got != p || len(salt) != 8 || len(key) != 64 {
		t.Errorf("decoded %+v (salt %d, key %d bytes), want %+v", got, len(salt), len(key), p)
	}
	if ok, err := Verify(pw, h); !ok || err != nil {
		t.Errorf("Verify = %v, %v; want true, nil", ok, err)
	}
}

// TestVerifyReference checks interoperability with the Argon2 reference
// implementation: this vector is from phc-winner-argon2's tests.
func TestVerifyReference(t *testing.T) {
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if ok, err := Verify("password", ref); !ok || err != nil {
		t.Errorf("Verify(reference) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := Verify("passwore", ref); ok || err != nil {
		t.Errorf("Verify(wrong, reference) = %v, %v; want false, nil", ok, err)
	}
}

func TestVerifyWrongPassword(t *testing.T) {
	h := mustHash(t, pw, cheap)
	for _, wrong := range []string{"", "correct horse battery stapl", pw + " ", strings.ToUpper(pw)} {
		if ok, err := Verify(wrong, h); ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
}

// TestVerifyDetectsTampering alters a well-formed hash so that it still
// parses: each change must make the right password fail, not error.
func TestVerifyDetectsTampering(t *testing.T) {
	h := mustHash(t, pw, cheap)
	fields := strings.Split(h, "$") // "", argon2id, v=19, params, salt, key
	flip := func(s string) string {
		c := byte('A')
		if s[0] == 'A' {
			c = 'B'
		}
		return string(c) + s[1:]
	}
	with := func(i int, v string) string {
		f := append([]string(nil), fields...)
		f[i] = v
		return strings.Join(f, "$")
	}
	_, _, rawKey, err := decode(h)
	if err != nil {
		t.Fatal(err)
	}
	for name, tampered := range map[string]string{
		"salt":       with(4, flip(fields[4])),
		"key":        with(5, flip(fields[5])),
		"memory":     with(3, "m=128,t=1,p=1"),
		"iterations": with(3, "m=64,t=2,p=1"),
		"threads":    with(3, "m=64,t=1,p=2"),
		"short key":  with(5, b64.EncodeToString(rawKey[:16])),
	} {
		t.Run(name, func(t *testing.T) {
			if ok, err := Verify(pw, tampered); ok || err != nil {
				t.Errorf("Verify(%s) = %v, %v; want false, nil", tampered, ok, err)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := mustHash(t, pw, cheap)
	salt := strings.Split(h, "$")[4]
	key := strings.Split(h, "$")[5]
	mk := func(params, s, k string) string { return "$argon2id$v=19$" + params + "$" + s + "$" + k }
	good := "m=64,t=1,p=1"
	for name, enc := range map[string]string{
		"empty":                "",
		"garbage":              "not a hash",
		"bcrypt":               "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":              strings.Replace(h, "argon2id", "argon2i", 1),
		"argon2d":              strings.Replace(h, "argon2id", "argon2d", 1),
		"version 16":           strings.Replace(h, "v=19", "v=16", 1),
		"no version":           "$argon2id$" + good + "$" + salt + "$" + key,
		"no leading dollar":    h[1:],
		"trailing dollar":      h + "$",
		"extra field":          h + "$" + key,
		"missing key":          "$argon2id$v=19$" + good + "$" + salt,
		"too long":             h + strings.Repeat("A", maxEncodedLen),
		"params reordered":     mk("t=1,m=64,p=1", salt, key),
		"param missing":        mk("m=64,t=1", salt, key),
		"param extra":          mk("m=64,t=1,p=1,k=1", salt, key),
		"param empty":          mk("m=,t=1,p=1", salt, key),
		"param not a number":   mk("m=64,t=x,p=1", salt, key),
		"param negative":       mk("m=64,t=-1,p=1", salt, key),
		"param plus sign":      mk("m=+64,t=1,p=1", salt, key),
		"param leading zero":   mk("m=064,t=1,p=1", salt, key),
		"param space":          mk("m=64, t=1,p=1", salt, key),
		"param overflow":       mk("m=4294967296,t=1,p=1", salt, key),
		"memory zero":          mk("m=0,t=1,p=1", salt, key),
		"memory below 8/lane":  mk("m=15,t=1,p=2", salt, key),
		"memory above 1 GiB":   mk("m=1048577,t=1,p=1", salt, key),
		"memory max uint32":    mk("m=4294967295,t=1,p=1", salt, key),
		"iterations zero":      mk("m=64,t=0,p=1", salt, key),
		"iterations above 16":  mk("m=64,t=17,p=1", salt, key),
		"work above cap":       mk("m=1048576,t=2,p=1", salt, key),
		"work above cap 2":     mk("m=131072,t=9,p=1", salt, key),
		"threads zero":         mk("m=64,t=1,p=0", salt, key),
		"threads above 64":     mk("m=1024,t=1,p=65", salt, key),
		"threads wrap uint8":   mk("m=64,t=1,p=257", salt, key),
		"salt empty":           mk(good, "", key),
		"salt too short":       mk(good, "c2FsdA", key), // 4 bytes
		"salt too long":        mk(good, strings.Repeat("A", 88), key),
		"salt not base64":      mk(good, "!!!!!!!!!!!!!!!!!!!!!!", key),
		"salt padded":          mk(good, salt+"==", key),
		"salt url alphabet":    mk(good, "-_-_-_-_-_-_-_-_-_-_-w", key),
		"salt newline":         mk(good, salt[:10]+"\n"+salt[10:], key),
		"salt trailing bits":   mk(good, salt[:21]+"B", key), // B sets bits past the 16th byte
		"key empty":            mk(good, salt, ""),
		"key too short":        mk(good, salt, key[:20]), // 15 bytes
		"key too long":         mk(good, salt, strings.Repeat("A", 88)),
		"key not base64":       mk(good, salt, strings.Repeat("*", 43)),
		"key impossible len":   mk(good, salt, key[:41]), // 41 mod 4 == 1
		"whitespace around":    " " + h + " ",
		"uppercase algorithm":  strings.Replace(h, "argon2id", "ARGON2ID", 1),
		"nul in params":        mk("m=64\x00,t=1,p=1", salt, key),
		"unicode digits":       mk("m=６４,t=1,p=1", salt, key),
		"separator semicolons": mk("m=64;t=1;p=1", salt, key),
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := Verify(pw, enc)
			if ok || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify = %v, %v; want false, ErrMalformed", ok, err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q contains the password", err)
			}
			if !NeedsRehash(enc, cheap) {
				t.Error("NeedsRehash(malformed) = false, want true")
			}
		})
	}
}

func TestHashWithParamsRejectsBadParams(t *testing.T) {
	for name, p := range map[string]Params{
		"zero":             {},
		"memory too low":   {Memory: 15, Iterations: 1, Threads: 2, SaltLen: 16, KeyLen: 32},
		"memory too high":  {Memory: maxMemory + 1, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"iterations zero":  {Memory: 64, Iterations: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		"iterations high":  {Memory: 64, Iterations: 17, Threads: 1, SaltLen: 16, KeyLen: 32},
		"work too high":    {Memory: 128 * 1024, Iterations: 9, Threads: 1, SaltLen: 16, KeyLen: 32},
		"threads zero":     {Memory: 64, Iterations: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		"threads high":     {Memory: 1024, Iterations: 1, Threads: 65, SaltLen: 16, KeyLen: 32},
		"salt too short":   {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 7, KeyLen: 32},
		"salt too long":    {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 65, KeyLen: 32},
		"key too short":    {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 15},
		"key too long":     {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 65},
		"key length huge":  {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 1 << 31},
		"salt length huge": {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 1 << 31, KeyLen: 32},
	} {
		t.Run(name, func(t *testing.T) {
			if h, err := HashWithParams(pw, p); err == nil {
				t.Errorf("HashWithParams(%+v) = %q, nil; want error", p, h)
			}
		})
	}
}

func TestDefaultParamsValid(t *testing.T) {
	if err := DefaultParams.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordTooLong(t *testing.T) {
	long := strings.Repeat("x", MaxPasswordLen+1)
	if _, err := HashWithParams(long, cheap); err == nil {
		t.Error("HashWithParams accepted a password over MaxPasswordLen")
	} else if strings.Contains(err.Error(), long[:20]) {
		t.Errorf("error %q contains the password", err)
	}
	h := mustHash(t, long[:MaxPasswordLen], cheap)
	if ok, err := Verify(long[:MaxPasswordLen], h); !ok || err != nil {
		t.Errorf("Verify(MaxPasswordLen bytes) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := Verify(long, h); ok || err != nil {
		t.Errorf("Verify(too long) = %v, %v; want false, nil", ok, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	h := mustHash(t, pw, cheap)
	if NeedsRehash(h, cheap) {
		t.Error("NeedsRehash(same params) = true")
	}
	for name, p := range map[string]Params{
		"memory":     {Memory: 128, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"iterations": {Memory: 64, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		"threads":    {Memory: 64, Iterations: 1, Threads: 2, SaltLen: 16, KeyLen: 32},
		"salt":       {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 32, KeyLen: 32},
		"key":        {Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 64},
		"lower cost": {Memory: 32, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"default":    DefaultParams,
	} {
		if !NeedsRehash(h, p) {
			t.Errorf("NeedsRehash(%s changed) = false, want true", name)
		}
	}
}

func TestCheckStrength(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"empty", "", false},
		{"11 chars", "abcdefghijk", false},
		{"12 chars", "abcdefghijkl", true},
		{"passphrase", pw, true},
		{"12 spaces", strings.Repeat(" ", 12), false},
		{"mixed whitespace", " \t\n\r\v\f\u00a0\u2003\u3000   ", false},
		{"inner spaces count", "a          b", true},
		{"12 non-Latin chars", "пароль-пароль", true},
		{"11 multibyte chars", strings.Repeat("é", 11), false},
		{"max bytes", strings.Repeat("a", MaxPasswordLen), true},
		{"over max bytes", strings.Repeat("a", MaxPasswordLen+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckStrength(tc.password)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckStrength = %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrPolicy) {
				t.Errorf("error %v does not wrap ErrPolicy", err)
			}
			if strings.TrimSpace(tc.password) != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

// FuzzVerify checks that Verify never panics on any input, that whatever
// decode accepts is the canonical form encode writes, and that a fresh hash
// of any password verifies.
func FuzzVerify(f *testing.F) {
	f.Add(pw, mustHash(f, pw, cheap))
	f.Add("password", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("", "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("x", "$argon2id$v=19$m=64,t=1,p=257$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("\x00\xff", "$argon2i$v=19$m=4294967295,t=4294967295,p=255$$")
	f.Fuzz(func(t *testing.T, password, encoded string) {
		p, salt, key, err := decode(encoded)
		if err == nil {
			if re := encode(p, salt, key); re != encoded {
				t.Fatalf("decode accepted non-canonical %q (canonical %q)", encoded, re)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("decode error %v does not wrap ErrMalformed", err)
		}
		// Within bounds a hash may still cost up to 16 GiB-passes; run
		// Argon2 only on cheap ones so the fuzzer stays fast. Refusal of
		// the expensive ones is what decode's checks above cover.
		if err != nil || uint64(p.Memory)*uint64(p.Iterations) <= 4096 {
			ok, verr := Verify(password, encoded)
			if (verr != nil) != (err != nil) || (ok && verr != nil) {
				t.Fatalf("Verify = %v, %v; decode error %v", ok, verr, err)
			}
		}

		if len(password) > MaxPasswordLen {
			return
		}
		h := mustHash(t, password, cheap)
		if ok, err := Verify(password, h); !ok || err != nil {
			t.Fatalf("Verify(own hash) = %v, %v; want true, nil", ok, err)
		}
	})
}

// BenchmarkHash measures one Hash with DefaultParams: the server's cost per
// login attempt, since Verify does the same work.
func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hash(pw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashOWASPMinimum is the cost of OWASP's m=19 MiB, t=2, p=1, the
// cheaper alternative DefaultParams was weighed against.
func BenchmarkHashOWASPMinimum(b *testing.B) {
	p := Params{Memory: 19 * 1024, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	for b.Loop() {
		if _, err := HashWithParams(pw, p); err != nil {
			b.Fatal(err)
		}
	}
}
