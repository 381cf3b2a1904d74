package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSignalTask: the signal reaches the task's init process, which keeps
// running; a missing task is ErrNotFound.
func TestSignalTask(t *testing.T) {
	cfg := taskConfig(t, "trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.1; done")
	start(t, testDriver, cfg)
	waitLogs(t, cfg, "stdout", "ready\n")
	if err := testDriver.SignalTask(context.Background(), cfg.ID, syscall.SIGHUP); err != nil {
		t.Fatalf("SignalTask: %v", err)
	}
	waitLogs(t, cfg, "stdout", "got-hup\n")
	st, err := testDriver.InspectTask(context.Background(), cfg.ID)
	if err != nil || st.State != StateRunning {
		t.Errorf("after SIGHUP: %+v %v", st, err)
	}
	if err := testDriver.SignalTask(context.Background(), "no-such-task", syscall.SIGHUP); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing task: %v", err)
	}
}

// TestExecWrapperAndOwnedByUser: the wrapper runs first with the resolved
// process after it, and files for the task belong to the user the spec
// resolved from the image's /etc/passwd.
func TestExecWrapperAndOwnedByUser(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	owned := filepath.Join(dir, "env")
	if err := os.WriteFile(owned, []byte("x"), 0o400); err != nil {
		t.Fatal(err)
	}
	cfg := taskConfig(t, `echo "wrapped=$WRAPPED user=$(id -u)"; cat /mnt/env; echo`)
	cfg.User = "user" // 1000:1000 in the test image's /etc/passwd
	cfg.ExecWrapper = []string{"/bin/env", "WRAPPED=yes"}
	cfg.OwnedByUser = []string{owned}
	cfg.Mounts = []Mount{{Source: dir, Destination: "/mnt", ReadOnly: true}}
	start(t, testDriver, cfg)
	st := waitExit(t, testDriver, cfg.ID, 30*time.Second)
	if st.ExitCode != 0 {
		t.Errorf("exit %d; stderr %s", st.ExitCode, readLogs(t, cfg, "stderr"))
	}
	if out := waitLogs(t, cfg, "stdout", "x\n"); out != "wrapped=yes user=1000\nx\n" {
		t.Errorf("stdout %q", out)
	}
	var fst syscall.Stat_t
	if err := syscall.Stat(owned, &fst); err != nil || fst.Uid != 1000 || fst.Gid != 1000 {
		t.Errorf("owner of %s: %d:%d %v", owned, fst.Uid, fst.Gid, err)
	}
}
