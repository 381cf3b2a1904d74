package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/client/secretexec"
)

// newSecretExecCmd is `hive secret-exec --env-file FILE -- PROGRAM
// [ARGS...]`, hidden: a worker bind-mounts this binary into a task's
// container and runs it as the task's first process when the task takes
// secrets as environment variables. It adds the variables from FILE and
// execs PROGRAM (see package client/secretexec); values never reach a
// command line, the OCI spec or a log.
func newSecretExecCmd() *cobra.Command {
	return &cobra.Command{
		Use:    secretexec.Command + " --env-file FILE -- PROGRAM [ARGS...]",
		Short:  "Run a program with secret environment variables (used inside task containers)",
		Hidden: true,
		// The program's own flags follow "--"; parse nothing here.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := secretexec.Run(args)
			// Run returns only on failure. Exit as a shell would (127: not
			// found, 126: cannot run), so the task's exit code says which.
			fmt.Fprintf(os.Stderr, "hive %v\n", err)
			code := 1
			var ee *secretexec.ExitError
			if errors.As(err, &ee) {
				code = ee.Code
			}
			os.Exit(code)
			return nil
		},
	}
}
