package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the parser's output")

// goldenOptions are the inputs some testdata files need: a job that uses
// variables gets them from its own <name>.vars.hcl and, if present,
// <name>.vars.json holding -var values.
func goldenOptions(t *testing.T, path string) Options {
	t.Helper()
	base := strings.TrimSuffix(path, ".hcl")
	var opts Options
	if _, err := os.Stat(base + ".vars.hcl"); err == nil {
		opts.VarFiles = []string{base + ".vars.hcl"}
	}
	if b, err := os.ReadFile(base + ".vars.json"); err == nil {
		if err := json.Unmarshal(b, &opts.Vars); err != nil {
			t.Fatalf("%s.vars.json: %v", base, err)
		}
	}
	return opts
}

// jobFiles are the job files in testdata (var files excepted).
func jobFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".vars.hcl") {
			jobs = append(jobs, f)
		}
	}
	if len(jobs) == 0 {
		t.Fatal("no job files in testdata")
	}
	return jobs
}

func TestGolden(t *testing.T) {
	for _, path := range jobFiles(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".hcl")
		t.Run(name, func(t *testing.T) {
			job, err := ParseFile(path, goldenOptions(t, path))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := marshal(t, job)
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./jobspec -run TestGolden -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s; run with -update if the change is intended\ngot:\n%s", path, golden, got)
			}
		})
	}
}

// TestGoldenStable parses each file twice: the output must not depend on
// map order or anything else that varies between runs.
func TestGoldenStable(t *testing.T) {
	for _, path := range jobFiles(t) {
		opts := goldenOptions(t, path)
		a, err1 := ParseFile(path, opts)
		b, err2 := ParseFile(path, opts)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", path, err1, err2)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s: two parses differ", path)
		}
	}
}

func TestGoldenJobsValidate(t *testing.T) {
	for _, path := range jobFiles(t) {
		job, err := ParseFile(path, goldenOptions(t, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, g := range job.Groups {
			for _, task := range g.Tasks {
				if err := task.Validate(); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			}
		}
	}
}

// marshal renders a job for a golden file: indented, fields in struct
// order, map keys sorted (encoding/json sorts them), "<" and ">" as is.
func marshal(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join("testdata", "no-such-file.hcl"), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}
