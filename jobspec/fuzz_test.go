package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes the parser panic; it returns a job that a
// worker would accept or an *Error, never both or neither.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte(wrap(`      user = "${attr.a}${attr.a.b}"`)))
	f.Add([]byte("variable \"x\" {\n  default = 1\n}\nlocals {\n  y = local.z\n  z = var.x\n}\njob \"j\" {\n  priority = local.y\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		job, err := Parse("fuzz.hcl", src, Options{})
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if job != nil {
				t.Fatal("both a job and an error")
			}
			if len(perr.Problems()) == 0 || perr.Error() == "" {
				t.Fatal("an error with no problems")
			}
			return
		}
		if job == nil {
			t.Fatal("neither a job nor an error")
		}
		for _, g := range job.Groups {
			if g.Count < 0 || g.Restart == nil || g.Reschedule == nil {
				t.Fatalf("group %+v", g)
			}
			for _, task := range g.Tasks {
				if err := task.Validate(); err != nil {
					t.Fatalf("parsed task fails Validate: %v", err)
				}
			}
		}
	})
}

// FuzzNetworkPolicies: no input makes the policy parser panic; it returns
// policies the managers would accept or an *Error, never both or neither.
func FuzzNetworkPolicies(f *testing.F) {
	src, err := os.ReadFile(filepath.Join("testdata", "netpol", "policies.hcl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(src)
	f.Add([]byte(np("  selector {}\n  ingress {\n    from {\n      ip_block { cidr = \"10.0.0.0/8\" }\n    }\n  }")))
	f.Fuzz(func(t *testing.T, src []byte) {
		got, err := ParseNetworkPolicies("fuzz.hcl", src)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if got != nil || len(perr.Problems()) == 0 {
				t.Fatalf("error %v with result %+v", err, got)
			}
			return
		}
		if got == nil {
			t.Fatal("neither policies nor an error")
		}
		for _, p := range got.Policies {
			if err := p.Validate(); err != nil {
				t.Fatalf("parsed policy fails Validate: %v", err)
			}
		}
		for _, p := range got.AdminPolicies {
			if err := p.Validate(); err != nil {
				t.Fatalf("parsed admin policy fails Validate: %v", err)
			}
		}
	})
}
