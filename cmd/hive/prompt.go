package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Passwords reach the CLI one of two ways, and never through a flag, which
// would leave them in the shell history and in ps output:
//
//   - typed at a terminal, without echo, when standard input is one;
//   - with --password-stdin, one per line on standard input, for scripts
//     (echo "$PW" | hive login --user ci --password-stdin).
//
// A command that is neither on a terminal nor given --password-stdin fails
// rather than read a password that is being echoed somewhere. The unlock
// key of `hive operator unlock` comes the same way, with --key-stdin.

// terminal is the part of a tty prompting needs.
type terminal interface {
	// ReadPassword reads one line without echoing it.
	ReadPassword() ([]byte, error)
}

type fdTerminal int

func (fd fdTerminal) ReadPassword() ([]byte, error) { return term.ReadPassword(int(fd)) }

// openTerminal returns in as a terminal, or nil when it is not one. Tests
// replace it to type at a fake terminal.
var openTerminal = func(in io.Reader) terminal {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return fdTerminal(f.Fd())
}

// secretReader asks for user names and passwords.
type secretReader struct {
	in     *bufio.Reader
	prompt io.Writer // prompts go to standard error, so stdout stays clean
	tty    terminal  // nil when standard input is not a terminal
	stdin  bool      // --password-stdin: passwords are lines of standard input
	// stdinFlag names the flag that sets stdin, for error messages.
	stdinFlag string
}

func newSecretReader(cmd *cobra.Command, fromStdin bool) *secretReader {
	in := cmd.InOrStdin()
	return &secretReader{
		in:        bufio.NewReader(in),
		prompt:    cmd.ErrOrStderr(),
		tty:       openTerminal(in),
		stdin:     fromStdin,
		stdinFlag: "--password-stdin",
	}
}

func (s *secretReader) noTerminal(what string) error {
	return fmt.Errorf("standard input is not a terminal, so the %s cannot be typed without echo: pass %s and write it to standard input", what, s.stdinFlag)
}

// readLine reads one line, without its line ending; a last line without a
// newline counts. It fails at the end of input.
func (s *secretReader) readLine() (string, error) {
	line, err := s.in.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

// user asks for a user name on the terminal (it is echoed).
func (s *secretReader) user() (string, error) {
	if s.tty == nil || s.stdin {
		return "", errors.New("no user name: pass --user NAME")
	}
	fmt.Fprint(s.prompt, "User: ")
	name, err := s.readLine()
	if err != nil {
		return "", fmt.Errorf("reading the user name: %w", err)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("no user name given")
	}
	return name, nil
}

// secret reads one password: the next line of standard input with
// --password-stdin, else typed at the terminal after prompt. what names it
// in errors ("password", "current password").
func (s *secretReader) secret(prompt, what string) (string, error) {
	var pw string
	switch {
	case s.stdin:
		line, err := s.readLine()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: standard input ended before the %s", s.stdinFlag, what)
		}
		if err != nil {
			return "", fmt.Errorf("%s: reading the %s: %w", s.stdinFlag, what, err)
		}
		pw = line
	case s.tty != nil:
		fmt.Fprint(s.prompt, prompt)
		b, err := s.tty.ReadPassword()
		fmt.Fprintln(s.prompt) // the user's Enter was not echoed
		if err != nil {
			return "", fmt.Errorf("reading the %s from the terminal: %w", what, err)
		}
		pw = string(b)
	default:
		return "", s.noTerminal(what)
	}
	if pw == "" {
		return "", fmt.Errorf("empty %s", what)
	}
	return pw, nil
}

// newSecret reads a password being set. At a terminal it is typed twice,
// so a typo does not become the password.
func (s *secretReader) newSecret(prompt, what string) (string, error) {
	pw, err := s.secret(prompt, what)
	if err != nil || s.stdin {
		return pw, err
	}
	again, err := s.secret("Retype "+strings.ToLower(prompt[:1])+prompt[1:], what)
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", fmt.Errorf("the two %ss do not match; nothing was changed", what)
	}
	return pw, nil
}
