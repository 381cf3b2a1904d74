package acl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseFile: no input makes ParseFile panic; it returns either a spec
// whose records all validate and compile, or an *Error with at least one
// positioned problem, never both or neither.
func FuzzParseFile(f *testing.F) {
	for _, pattern := range []string{"*.hcl", "errors/*.hcl"} {
		files, _ := filepath.Glob(filepath.Join("testdata", pattern))
		for _, path := range files {
			src, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte(`role "r" { rule { resources = ["*"] actions = ["*"] scope = "job:*/*" } }`))
	f.Add([]byte("binding \"b\" {\n  role = \"viewer\"\n  subjects = [\"sa:web/ci\"]\n  namespace = \"${\"web\"}\"\n}\n"))
	f.Add([]byte("role \"r\" \"extra\" {}\nrole {}\nbinding \"b\" { role = { a = 1 } }"))
	f.Fuzz(func(t *testing.T, src []byte) {
		spec, err := ParseFile("fuzz.hcl", src)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if spec != nil {
				t.Fatal("both a spec and an error")
			}
			if len(perr.Problems()) == 0 || perr.Error() == "" {
				t.Fatal("an error with no problems")
			}
			return
		}
		if spec == nil {
			t.Fatal("neither a spec nor an error")
		}
		for _, r := range spec.Roles {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted an invalid role: %v", err)
			}
		}
		for _, b := range spec.Bindings {
			if err := b.Validate(); err != nil {
				t.Fatalf("accepted an invalid binding: %v", err)
			}
		}
		// Bindings may name roles defined elsewhere; the roles alone
		// must compile.
		if _, err := Compile(spec.Roles, nil); err != nil {
			t.Fatalf("accepted roles that do not compile: %v", err)
		}
	})
}
