package nft

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

// Tests make network namespaces named hive-nft-test-<pid>-<n> and remove
// them in t.Cleanup, pass or fail; nothing is created in the caller's
// namespace. Addresses are in 198.18.0.0/15.
const nsPrefix = "hive-nft-test-"

var nsCounter atomic.Int64

// requirePrereqs fails (never skips) when the machine cannot run the tests,
// so a machine without root cannot pass by running nothing.
func requirePrereqs(tb testing.TB) {
	tb.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces and nftables need CAP_NET_ADMIN)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%q in PATH (apt-get install iproute2 nftables)", tool))
		}
	}
	if len(missing) > 0 {
		tb.Fatalf("netenforce/nft tests need: %s", strings.Join(missing, "; "))
	}
}

func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}

// testNS is a named network namespace with an open handle.
type testNS struct {
	name string
	h    netns.NsHandle
}

func newNS(tb testing.TB) *testNS {
	tb.Helper()
	name := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), nsCounter.Add(1))
	run(tb, "ip", "netns", "add", name)
	ns := &testNS{name: name, h: -1}
	tb.Cleanup(func() {
		if ns.h >= 0 {
			_ = ns.h.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("removing netns %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		tb.Fatalf("open netns %s: %v", name, err)
	}
	ns.h = h
	run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	return ns
}

// exec runs a command inside the namespace.
func (n *testNS) exec(tb testing.TB, args ...string) string {
	tb.Helper()
	return run(tb, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

// do runs f on an OS thread switched into the namespace. Sockets f creates
// stay in the namespace after it returns.
func (n *testNS) do(f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so
		// the runtime discards it when this goroutine ends.
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
