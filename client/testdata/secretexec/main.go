// Command secretexec is `hive secret-exec` on its own: the client's
// integration test builds it with CGO_ENABLED=0 (the test binary itself
// is linked dynamically, so it cannot run inside a busybox container) and
// bind-mounts it into containers as the hive binary.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/hivesec/hive/client/secretexec"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != secretexec.Command {
		fmt.Fprintf(os.Stderr, "usage: %s %s --env-file FILE -- PROGRAM [ARGS...]\n", os.Args[0], secretexec.Command)
		os.Exit(2)
	}
	err := secretexec.Run(os.Args[2:])
	fmt.Fprintln(os.Stderr, err)
	var ee *secretexec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.Code)
	}
	os.Exit(1)
}
