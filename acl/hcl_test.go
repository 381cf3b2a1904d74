package acl

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files from the parser's output")

// TestParseGolden parses each testdata/*.hcl and compares the result with
// its .golden.json, and each testdata/errors/*.hcl and compares the error
// text with its .golden.txt. Run with -update after an intended change,
// then read the diff.
func TestParseGolden(t *testing.T) {
	check := func(t *testing.T, golden string, got []byte) {
		t.Helper()
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./acl -run TestParseGolden -update to create it)", err)
		}
		if string(got) != string(want) {
			t.Errorf("output differs from %s; run with -update if the change is intended\ngot:\n%s\nwant:\n%s", golden, got, want)
		}
	}
	good, _ := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	bad, _ := filepath.Glob(filepath.Join("testdata", "errors", "*.hcl"))
	if len(good) < 3 || len(bad) < 4 {
		t.Fatalf("testdata is missing: %v %v", good, bad)
	}
	for _, path := range good {
		t.Run(path, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := ParseFile(path, src)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			// What parses must compile, bindings to roles from the same
			// file or built in.
			if _, err := Compile(spec.Roles, spec.Bindings); err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			check(t, strings.TrimSuffix(path, ".hcl")+".golden.json", append(got, '\n'))
		})
	}
	for _, path := range bad {
		t.Run(path, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := ParseFile(path, src)
			if err == nil {
				t.Fatalf("ParseFile accepted %s: %+v", path, spec)
			}
			if spec != nil {
				t.Fatal("ParseFile returned a spec with an error")
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not an *Error", err)
			}
			for _, p := range perr.Problems() {
				if p.File != path || p.Line == 0 || p.Col == 0 {
					t.Errorf("problem without a position: %+v", p)
				}
			}
			check(t, strings.TrimSuffix(path, ".hcl")+".golden.txt", []byte(err.Error()+"\n"))
		})
	}
}

// TestParsePositions pins a few positions exactly, independent of the
// golden files: the argument a validation error is about, and a label.
func TestParsePositions(t *testing.T) {
	src := `role "r" {
  rule {
    resources = ["job"]
    actions   = ["read"]
    scope     = "job:web"
  }
}
binding "Bad" {
  role     = "r"
  subjects = ["user:a"]
}
`
	_, err := ParseFile("p.hcl", []byte(src))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("ParseFile = %v", err)
	}
	ps := perr.Problems()
	if len(ps) != 2 {
		t.Fatalf("problems = %v", ps)
	}
	if ps[0].Line != 5 || ps[0].Col != 17 || !strings.Contains(ps[0].Message, `invalid scope "job:web"`) {
		t.Errorf("first problem = %+v", ps[0])
	}
	if ps[1].Line != 8 || ps[1].Col != 9 || !strings.Contains(ps[1].Message, `invalid binding name "Bad"`) {
		t.Errorf("second problem = %+v", ps[1])
	}
	if !strings.HasPrefix(err.Error(), "p.hcl:5:17: ") {
		t.Errorf("error text = %q", err)
	}
}
