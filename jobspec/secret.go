package jobspec

import (
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hivesec/hive/structs"
)

// A task's secret blocks say which key of which secret (in the job's
// namespace) the worker delivers to the task, as a file under /run/secrets,
// as an environment variable, or both, and what happens when the secret
// gets a new version:
//
//	secret "db" {
//	  name          = "db-password"
//	  key           = "password"
//	  file          = "db.txt"   # /run/secrets/db.txt
//	  mode          = "0400"
//	  uid           = 1000
//	  gid           = 1000
//	  env           = "DB_PASSWORD"
//	  change_mode   = "signal"   # restart (default), signal or noop
//	  change_signal = "SIGHUP"
//	}

var secretSchema = &schema{
	name:  "secret block",
	attrs: []string{"name", "key", "file", "mode", "uid", "gid", "env", "change_mode", "change_signal"},
	refused: map[string]string{
		"destination": "set file, a path under /run/secrets",
		"path":        "set file, a path under /run/secrets",
	},
}

// DefaultSecretMode is a secret file's mode when the block sets none.
const DefaultSecretMode = 0o400

// maxSecretFileLen bounds a secret's file path (PATH_MAX less the
// /run/secrets/ prefix and room for the worker's temporary names).
const maxSecretFileLen = 1024

var (
	secretLabelRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// signalNames are the signals change_signal may name: Linux's standard
// signals, as the worker's containers run on Linux.
var signalNames = map[string]bool{
	"SIGHUP": true, "SIGINT": true, "SIGQUIT": true, "SIGILL": true, "SIGTRAP": true,
	"SIGABRT": true, "SIGBUS": true, "SIGFPE": true, "SIGKILL": true, "SIGUSR1": true,
	"SIGSEGV": true, "SIGUSR2": true, "SIGPIPE": true, "SIGALRM": true, "SIGTERM": true,
	"SIGSTKFLT": true, "SIGCHLD": true, "SIGCONT": true, "SIGSTOP": true, "SIGTSTP": true,
	"SIGTTIN": true, "SIGTTOU": true, "SIGURG": true, "SIGXCPU": true, "SIGXFSZ": true,
	"SIGVTALRM": true, "SIGPROF": true, "SIGWINCH": true, "SIGIO": true, "SIGPWR": true,
	"SIGSYS": true,
}

// NormalizeSignal returns the canonical name ("SIGHUP") of a signal given
// as "SIGHUP", "HUP" or in any case, and whether it is a known signal.
func NormalizeSignal(s string) (string, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	return s, signalNames[s]
}

// secrets decodes a task's secret blocks. Labels, files and environment
// variables must be unique within the task, and the variables must not
// also be set by the task's env.
// envLine is the line of the task's env (0: none).
func (d *decoder) secrets(blocks []*hclsyntax.Block, taskEnv map[string]string, envLine int) []*structs.TaskSecret {
	var out []*structs.TaskSecret
	labels := map[string]int{}
	type fileUse struct {
		label string
		line  int
	}
	files := map[string]fileUse{}
	envs := map[string]fileUse{}
	for _, b := range blocks {
		label := b.Labels[0]
		if line, dup := labels[label]; dup {
			d.errorf(b.LabelRanges[0], "duplicate secret %q; the first is at line %d", label, line)
			continue
		}
		labels[label] = b.TypeRange.Start.Line
		s, c := d.secret(b)
		if s == nil {
			continue
		}
		if s.File != "" {
			a := c.attrs["file"]
			if prev, dup := files[s.File]; dup {
				d.errorf(a.Expr.Range(), "file %q is also written by secret %q at line %d", s.File, prev.label, prev.line)
			} else {
				for f, prev := range files {
					if inside(s.File, f) || inside(f, s.File) {
						d.errorf(a.Expr.Range(), "file %q and the file %q of secret %q at line %d cannot both exist: one is a directory of the other", s.File, f, prev.label, prev.line)
						break
					}
				}
				files[s.File] = fileUse{label, a.SrcRange.Start.Line}
			}
		}
		if s.Env != "" {
			a := c.attrs["env"]
			if prev, dup := envs[s.Env]; dup {
				d.errorf(a.Expr.Range(), "env %q is also set by secret %q at line %d", s.Env, prev.label, prev.line)
			} else {
				envs[s.Env] = fileUse{label, a.SrcRange.Start.Line}
				if _, clash := taskEnv[s.Env]; clash {
					d.errorf(a.Expr.Range(), "env %q is also set in the task's env at line %d; set it in one place", s.Env, envLine)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// inside reports whether file p lies under dir (as "dir/...").
func inside(p, dir string) bool {
	return strings.HasPrefix(p, dir+"/")
}

// secret decodes one secret block; nil when it is wrong (the problems are
// recorded).
func (d *decoder) secret(b *hclsyntax.Block) (*structs.TaskSecret, *content) {
	before := len(d.diags)
	label := b.Labels[0]
	if !secretLabelRE.MatchString(label) {
		d.errorf(b.LabelRanges[0], "invalid secret label %q: use 1-63 letters, digits, '_' and '-'", label)
	}
	s := &structs.TaskSecret{Label: label, Mode: DefaultSecretMode, ChangeMode: structs.SecretChangeRestart}
	c := d.content(b.Body, secretSchema)

	if a := c.attrs["name"]; a == nil {
		d.errorf(b.TypeRange, "secret %q needs the name of a secret in the job's namespace, like name = \"db-password\"", label)
	} else if d.str(a, &s.Name) {
		if err := structs.ValidateName("secret", s.Name); err != nil {
			d.errorf(a.Expr.Range(), "%v", err)
		}
	}
	if a := c.attrs["key"]; a == nil {
		d.errorf(b.TypeRange, "secret %q needs the key to deliver, like key = \"password\"", label)
	} else if d.str(a, &s.Key) {
		if err := structs.ValidateSecretKey(s.Key); err != nil {
			d.errorf(a.Expr.Range(), "%v", err)
		}
	}

	if a := c.attrs["file"]; a != nil && d.str(a, &s.File) {
		if msg := checkSecretFile(s.File); msg != "" {
			d.errorf(a.Expr.Range(), "file %q: %s", s.File, msg)
		}
	}
	for _, name := range []string{"mode", "uid", "gid"} {
		if a := c.attrs[name]; a != nil && c.attrs["file"] == nil {
			d.errorf(a.NameRange, "%s applies to the secret's file; set file or remove %s", name, name)
		}
	}
	if a := c.attrs["mode"]; a != nil {
		var m string
		if d.str(a, &m) {
			mode, err := strconv.ParseUint(strings.TrimPrefix(m, "0o"), 8, 32)
			switch {
			case err != nil || m == "":
				d.errorf(a.Expr.Range(), "mode %q is not an octal file mode like \"0400\"", m)
			case mode > 0o777:
				d.errorf(a.Expr.Range(), "mode %q: only permission bits (at most \"0777\") are allowed", m)
			default:
				s.Mode = uint32(mode)
			}
		}
	}
	d.integer(c.attrs["uid"], 0, math.MaxInt32, &s.UID)
	d.integer(c.attrs["gid"], 0, math.MaxInt32, &s.GID)

	if a := c.attrs["env"]; a != nil && d.str(a, &s.Env) {
		if !envNameRE.MatchString(s.Env) {
			d.errorf(a.Expr.Range(), "env %q is not a valid environment variable name: use letters, digits and '_', not starting with a digit", s.Env)
		}
	}
	if c.attrs["file"] == nil && c.attrs["env"] == nil {
		d.errorf(b.TypeRange, "secret %q delivers nothing: set file (a path under /run/secrets), env (a variable name) or both", label)
	}

	if a := c.attrs["change_mode"]; a != nil && d.str(a, &s.ChangeMode) {
		switch s.ChangeMode {
		case structs.SecretChangeRestart, structs.SecretChangeSignal, structs.SecretChangeNoop:
		default:
			d.errorf(a.Expr.Range(), "change_mode %q: use \"restart\", \"signal\" or \"noop\"", s.ChangeMode)
		}
	}
	if a := c.attrs["change_signal"]; a != nil {
		var sig string
		if d.str(a, &sig) {
			if s.ChangeMode != structs.SecretChangeSignal {
				d.errorf(a.NameRange, "change_signal is used only with change_mode = \"signal\"")
			} else if name, ok := NormalizeSignal(sig); !ok {
				d.errorf(a.Expr.Range(), "change_signal %q is not a signal name like \"SIGHUP\" or \"SIGUSR1\"", sig)
			} else {
				s.ChangeSignal = name
			}
		}
	} else if s.ChangeMode == structs.SecretChangeSignal {
		rng := b.TypeRange
		if a := c.attrs["change_mode"]; a != nil {
			rng = a.Expr.Range()
		}
		d.errorf(rng, "change_mode \"signal\" needs change_signal, like change_signal = \"SIGHUP\"")
	}
	if len(d.diags) != before {
		return nil, c
	}
	if s.Env != "" && s.ChangeMode != structs.SecretChangeRestart {
		rng := b.TypeRange
		if a := c.attrs["change_mode"]; a != nil {
			rng = a.Expr.Range()
		}
		d.warnf(rng, "secret %q: env %s gets a new value only when the task restarts; with change_mode %q a new version leaves the old value in its environment", label, s.Env, s.ChangeMode)
	}
	if s.File == "" {
		s.Mode = 0 // only a file has a mode
	}
	return s, c
}

// checkSecretFile says what is wrong with a file path under /run/secrets,
// or "" when nothing is: it must be relative, clean, and stay inside.
func checkSecretFile(f string) string {
	switch {
	case f == "":
		return "cannot be empty"
	case len(f) > maxSecretFileLen:
		return "is too long"
	case strings.ContainsRune(f, 0):
		return "cannot contain a NUL byte"
	case strings.HasPrefix(f, "/"):
		return "must be relative to /run/secrets, without a leading \"/\""
	}
	for _, part := range strings.Split(f, "/") {
		if part == ".." {
			return "cannot contain \"..\""
		}
		if len(part) > 255 {
			return "has a path element longer than 255 bytes"
		}
	}
	if path.Clean(f) != f || f == "." {
		return "must be a clean path (no \"//\", \".\" elements or trailing \"/\")"
	}
	return ""
}
