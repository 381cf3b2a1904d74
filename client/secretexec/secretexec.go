// Package secretexec is the body of `hive secret-exec`, the wrapper a
// worker runs as a task's first process when the task takes secrets as
// environment variables:
//
//	/run/hive/hive secret-exec --env-file /run/hive-secret-env/env -- <program> <args>...
//
// It reads the variables from the env file (in the allocation's secret
// tmpfs, bind-mounted read-only), adds them to its environment and execs
// the program, resolved through PATH as runc would. The values so live
// only in memory: in the tmpfs and in the task's processes, never in the
// OCI spec, containerd's metadata or the worker's disk.
//
// The package uses only the standard library: the helper is the hive
// binary itself, bind-mounted into containers of any image, and must not
// depend on anything but the kernel (it must be statically linked).
package secretexec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// Command is the subcommand (first argument) of the hive binary that runs
// Run.
const Command = "secret-exec"

// DefaultPath is the search path when the environment has no PATH, as
// Docker and runc use.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// MaxEnvFile bounds the env file Run reads: a secret version is at most
// 1 MiB, and a task's variables come from a few of them.
const MaxEnvFile = 16 << 20

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Args is the wrapper to put in front of a task's process arguments:
// helper (the hive binary's path inside the container) run as secret-exec
// with envFile (a path inside the container).
func Args(helper, envFile string) []string {
	return []string{helper, Command, "--env-file", envFile, "--"}
}

// EncodeEnv renders variables as the env file holds them: NAME=value
// entries, each ended by a NUL byte (as /proc/<pid>/environ), sorted by
// name. Values may hold anything but NUL, which no environment can carry.
// Errors name the variable, never its value.
func EncodeEnv(vars map[string]string) ([]byte, error) {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, k := range names {
		if !envNameRE.MatchString(k) {
			return nil, fmt.Errorf("invalid environment variable name %q", k)
		}
		v := vars[k]
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("the value for environment variable %s holds a NUL byte, which an environment cannot carry; deliver it as a file", k)
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte(0)
	}
	return b.Bytes(), nil
}

// ParseEnv reads an env file written by EncodeEnv into NAME=value
// entries. Errors name the entry by position or name, never a value.
func ParseEnv(data []byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != 0 {
		return nil, errors.New("env file is truncated: the last entry has no terminating NUL")
	}
	entries := strings.Split(string(data[:len(data)-1]), "\x00")
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		name, _, ok := strings.Cut(e, "=")
		if !ok || !envNameRE.MatchString(name) {
			return nil, fmt.Errorf("env file entry %d is not NAME=value with a valid name", i+1)
		}
		if seen[name] {
			return nil, fmt.Errorf("env file sets %s twice", name)
		}
		seen[name] = true
	}
	return entries, nil
}

// MergeEnv returns base (NAME=value entries) with vars added, a variable
// in vars replacing one of the same name in base.
func MergeEnv(base, vars []string) []string {
	override := make(map[string]bool, len(vars))
	for _, e := range vars {
		name, _, _ := strings.Cut(e, "=")
		override[name] = true
	}
	out := make([]string, 0, len(base)+len(vars))
	for _, e := range base {
		name, _, _ := strings.Cut(e, "=")
		if !override[name] {
			out = append(out, e)
		}
	}
	return append(out, vars...)
}

// ParseArgs reads secret-exec's arguments (after the subcommand):
// "--env-file FILE -- PROGRAM [ARGS...]" (also "--env-file=FILE").
func ParseArgs(args []string) (envFile string, argv []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			argv = args[i+1:]
			if envFile == "" {
				return "", nil, errors.New("missing --env-file")
			}
			if len(argv) == 0 {
				return "", nil, errors.New("no program to run after \"--\"")
			}
			return envFile, argv, nil
		case a == "--env-file":
			if i+1 >= len(args) {
				return "", nil, errors.New("--env-file needs a file")
			}
			i++
			envFile = args[i]
		case strings.HasPrefix(a, "--env-file="):
			envFile = strings.TrimPrefix(a, "--env-file=")
		default:
			return "", nil, fmt.Errorf("unexpected argument %q (usage: %s --env-file FILE -- PROGRAM [ARGS...])", a, Command)
		}
	}
	return "", nil, fmt.Errorf("missing \"--\" before the program (usage: %s --env-file FILE -- PROGRAM [ARGS...])", Command)
}

// ErrNotFound: the program is not in PATH.
var ErrNotFound = errors.New("executable file not found in $PATH")

// LookPath resolves file as execvp and runc do: a name with a slash is
// used as it is; otherwise the first executable regular file of that name
// in the directories of pathEnv (DefaultPath when empty; an empty element
// is the working directory).
func LookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		return file, nil
	}
	if pathEnv == "" {
		pathEnv = DefaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if executable(p) == nil {
			if !strings.Contains(p, "/") {
				p = "./" + p
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", file, ErrNotFound)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// ExitError is a failure with the exit status the shell would give it:
// 127 when the program is not found, 126 when it cannot be run, 1 for a
// bad invocation or env file.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Run is secret-exec's body; args are its arguments after the
// subcommand. On success it does not return: the program replaces the
// process.
func Run(args []string) error {
	envFile, argv, err := ParseArgs(args)
	if err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s: %w", Command, err)}
	}
	data, err := readFile(envFile)
	if err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s: read secret env file: %w", Command, err)}
	}
	vars, err := ParseEnv(data)
	if err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s: %s: %w", Command, envFile, err)}
	}
	// The program is found through the task's own PATH, not one a secret
	// may set, as runc would have found it without the wrapper.
	prog, err := LookPath(argv[0], os.Getenv("PATH"))
	if err != nil {
		code := 126
		if errors.Is(err, ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return &ExitError{Code: code, Err: fmt.Errorf("%s: %w", Command, err)}
	}
	err = syscall.Exec(prog, argv, MergeEnv(os.Environ(), vars))
	code := 126
	if errors.Is(err, syscall.ENOENT) {
		code = 127
	}
	return &ExitError{Code: code, Err: fmt.Errorf("%s: exec %s: %w", Command, prog, err)}
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxEnvFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxEnvFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxEnvFile)
	}
	return data, nil
}
