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
