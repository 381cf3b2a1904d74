package client

import (
	"fmt"
	"os"
	"testing"

	"github.com/hivesec/hive/client/driver"
)

// TestMain also serves as the task logger: containerd's shim runs this test
// binary as `client.test task-logger SPEC` for the integration test's
// containers (the driver's logger is this process's own executable).
func TestMain(m *testing.M) {
	if driver.IsLoggerInvocation(os.Args) {
		if err := driver.RunLogger(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
