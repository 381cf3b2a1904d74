package secretexec

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMain lets the tests run this binary as `secretexec.test secret-exec
// ...`, the way containers run `hive secret-exec ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		if err := Run(os.Args[2:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			var ee *ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.Code)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestEnvRoundTrip(t *testing.T) {
	vars := map[string]string{
		"DB_PASSWORD": "p=a ss\nword\twith \"quotes\" and 'more' $HOME ${X} \\ \u00e9",
		"EMPTY":       "",
		"_X1":         "=leading equals",
	}
	data, err := EncodeEnv(vars)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "DB_PASSWORD=") || data[len(data)-1] != 0 {
		t.Errorf("encoding not sorted NAME=value\\0: %q", data)
	}
	entries, err := ParseEnv(data)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		k, v, _ := strings.Cut(e, "=")
		got[k] = v
	}
	if len(got) != len(vars) {
		t.Fatalf("got %d entries, want %d", len(got), len(vars))
	}
	for k, v := range vars {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if e, err := ParseEnv(nil); err != nil || e != nil {
		t.Errorf("empty file: %v %v", e, err)
	}
}

func TestEncodeEnvRefuses(t *testing.T) {
	const value = "hunter2\x00"
	for _, vars := range []map[string]string{
		{"1BAD": "x"}, {"A-B": "x"}, {"": "x"}, {"OK": value},
	} {
		_, err := EncodeEnv(vars)
		if err == nil {
			t.Errorf("EncodeEnv(%q) passed", vars)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the value: %v", err)
		}
	}
}

func TestParseEnvRefuses(t *testing.T) {
	for _, data := range []string{"A=1", "A=1\x00=x\x00", "A=1\x00A=2\x00", "A\x00", "9=x\x00", "A=secret\x00B"} {
		_, err := ParseEnv([]byte(data))
		if err == nil {
			t.Errorf("ParseEnv(%q) passed", data)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows a value: %v", err)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "A=old", "B=keep"}, []string{"A=new", "C=add"})
	want := []string{"PATH=/bin", "B=keep", "A=new", "C=add"}
	if !slices.Equal(got, want) {
		t.Errorf("MergeEnv = %q, want %q", got, want)
	}
}

func TestParseArgs(t *testing.T) {
	f, argv, err := ParseArgs([]string{"--env-file", "/run/e", "--", "sh", "-c", "echo --env-file x --"})
	if err != nil || f != "/run/e" || !slices.Equal(argv, []string{"sh", "-c", "echo --env-file x --"}) {
		t.Errorf("got %q %q %v", f, argv, err)
	}
	f, argv, err = ParseArgs([]string{"--env-file=/e", "--", "prog"})
	if err != nil || f != "/e" || !slices.Equal(argv, []string{"prog"}) {
		t.Errorf("got %q %q %v", f, argv, err)
	}
	for _, bad := range [][]string{
		nil, {"--", "sh"}, {"--env-file", "/e"}, {"--env-file", "/e", "--"}, {"--env-file"}, {"-x", "--", "sh"}, {"--env-file", "/e", "sh"},
	} {
		if _, _, err := ParseArgs(bad); err == nil {
			t.Errorf("ParseArgs(%q) passed", bad)
		}
	}
	if a := Args("/run/hive/hive", "/run/hive-secret-env/env"); !slices.Equal(a, []string{"/run/hive/hive", "secret-exec", "--env-file", "/run/hive-secret-env/env", "--"}) {
		t.Errorf("Args = %q", a)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin1, bin2, noexec := filepath.Join(dir, "bin1"), filepath.Join(dir, "bin2"), filepath.Join(dir, "noexec")
	for _, d := range []string{bin1, bin2, noexec, filepath.Join(bin1, "isdir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin2, "prog"), 0o755)
	write(filepath.Join(noexec, "prog"), 0o644)
	write(filepath.Join(bin2, "isdir"), 0o755)

	path := strings.Join([]string{noexec, bin1, bin2}, ":")
	cases := []struct {
		file, path, want string
		err              error
	}{
		// Not executable, then missing, then found: the first executable wins.
		{"prog", path, filepath.Join(bin2, "prog"), nil},
		// A directory of that name is skipped.
		{"isdir", path, filepath.Join(bin2, "isdir"), nil},
		{"nope", path, "", ErrNotFound},
		{"prog", noexec, "", ErrNotFound},
		// With a slash, no search.
		{filepath.Join(bin2, "prog"), "", filepath.Join(bin2, "prog"), nil},
		{filepath.Join(noexec, "prog"), path, "", os.ErrPermission},
		{filepath.Join(bin1, "prog"), path, "", os.ErrNotExist},
	}
	for _, c := range cases {
		got, err := LookPath(c.file, c.path)
		if got != c.want || (c.err == nil) != (err == nil) || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("LookPath(%q, %q) = %q, %v; want %q, %v", c.file, c.path, got, err, c.want, c.err)
		}
	}
	// An empty PATH means the default one.
	if p, err := LookPath("sh", ""); err != nil || !strings.HasSuffix(p, "/sh") {
		t.Errorf("LookPath(sh) with no PATH: %q %v", p, err)
	}
	// An empty element is the working directory.
	t.Chdir(bin2)
	if p, err := LookPath("prog", bin1+"::"); err != nil || p != "./prog" {
		t.Errorf("LookPath in the working directory: %q %v", p, err)
	}
}

// TestRun runs the wrapper as a container would: it must set the
// variables (over ones of the same name), resolve the program through
// PATH and pass its arguments unchanged.
func TestRun(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	envBin, err := exec.LookPath("env")
	if err != nil {
		t.Fatalf("this test needs env(1): %v", err)
	}
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	value := "s3cret\nline two=x"
	data, err := EncodeEnv(map[string]string{"DB_PASSWORD": value, "OVERRIDE": "from-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(envFile, data, 0o400); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, Command, "--env-file", envFile, "--", "env", "-0")
	cmd.Env = []string{"PATH=" + filepath.Dir(envBin), "OVERRIDE=from-task", "KEEP=yes"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("secret-exec: %v: %s", err, errText(err))
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	for _, want := range []string{"DB_PASSWORD=" + value, "OVERRIDE=from-secret", "KEEP=yes"} {
		if !slices.Contains(got, want) {
			t.Errorf("environment %q lacks %q", got, want)
		}
	}
	if slices.Contains(got, "OVERRIDE=from-task") {
		t.Error("the task's variable was not replaced by the secret")
	}

	// Failures exit like a shell's and never show a value.
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--env-file", envFile, "--", "no-such-program"}, 127},
		{[]string{"--env-file", filepath.Join(dir, "missing"), "--", "env"}, 1},
		{[]string{"--", "env"}, 1},
		{[]string{"--env-file", dir, "--", "env"}, 1},
	} {
		cmd := exec.Command(self, append([]string{Command}, c.args...)...)
		cmd.Env = []string{"PATH=" + filepath.Dir(envBin)}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code {
			t.Errorf("%q: %v, want exit %d; output %s", c.args, err, c.code, out)
		}
		if strings.Contains(string(out), "s3cret") {
			t.Errorf("%q: output shows the value: %s", c.args, out)
		}
	}
}

func errText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
