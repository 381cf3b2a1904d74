// Command hive is Hive's single binary: the manager and worker daemons and
// the command-line client for the HTTPS API.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver"
)

func main() {
	// containerd's shim runs this binary as the task logger ("hive
	// task-logger SPEC"); that path must not go through cobra or print.
	if driver.IsLoggerInvocation(os.Args) {
		if err := driver.RunLogger(os.Args[2]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. Errors are
// printed once, here, as "Error: ...".
func run(args []string, stdout, stderr io.Writer) int {
	return runWithInput(args, os.Stdin, stdout, stderr)
}

// runWithInput is run with standard input given, for the commands that
// read it (passwords, apply -f -).
func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		if h := errorHint(err); h != "" {
			fmt.Fprintf(stderr, "Hint: %s\n", h)
		}
		return 1
	}
	return 0
}

// exitCode ends a command with that exit status and no "Error:" line: the
// command has already said what happened, as `hive auth can-i` does with
// "no" and `hive audit verify` with "BROKEN: ...".
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errorHint suggests a fix for API answers whose message may not say how.
func errorHint(err error) string {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return ""
	}
	switch ae.Code {
	case "invalid_token":
		// Join answers: the join token, not HIVE_TOKEN, was refused.
		return "ask an admin for a valid join token (`hive join-token create --role worker|manager`)"
	case "wrong_key":
		// A 403 that is about the unlock key, not the API token.
		return "give the HIVEUNLOCK1-... key that `hive init --autolock` printed when the cluster was created; every manager of the cluster takes the same key"
	case "sealed":
		return "that manager is locked (autolock) and serves no secrets until it is unlocked: `hive operator unlock --address <that manager>`"
	}
	switch ae.StatusCode {
	case http.StatusUnauthorized:
		return "log in with `hive login`, or pass an API token with --token or HIVE_TOKEN"
	case http.StatusForbidden:
		return "the token in use (--token, HIVE_TOKEN or `hive login`) lacks the permission this command needs; `hive auth can-i --list` shows what it may do"
	}
	return ""
}
