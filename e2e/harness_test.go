package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

// The TestHarness* tests check the harness itself and need no hive binary:
// if they fail, the acceptance tests' verdicts mean nothing.

// TestHarnessNetwork checks that hosts reach each other and the test
// process, that a partition cuts exactly the pairs it names, both ways,
// that Heal restores them, and that the cluster's cleanup leaves nothing.
func TestHarnessNetwork(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatalf("e2e prerequisite missing: ping (iputils-ping; run scripts/install-deps.sh): %v", err)
	}
	t.Run("cluster", func(t *testing.T) {
		c := NewCluster(t, 3)
		a, b, d := c.Host(0), c.Host(1), c.Host(2)

		for _, p := range [][2]*Host{{a, b}, {b, a}, {a, d}, {b, d}} {
			waitPing(t, p[0], p[1])
		}
		for _, h := range c.Hosts {
			WaitFor(t, 10*time.Second, "the test process to ping "+h.Name, func() error {
				_, err := run("ping", "-c", "1", "-W", "1", h.IP)
				return err
			})
		}

		c.Partition([]*Host{a}, []*Host{b, d})
		for _, p := range [][2]*Host{{a, b}, {b, a}, {a, d}, {d, a}} {
			if err := ping(p[0], p[1]); err == nil {
				t.Errorf("%s reaches %s across the partition", p[0].Name, p[1].Name)
			}
		}
		// Inside one side, and from the test process, traffic still flows.
		waitPing(t, b, d)
		if _, err := run("ping", "-c", "1", "-W", "2", a.IP); err != nil {
			t.Errorf("the test process no longer reaches the partitioned %s: %v", a.Name, err)
		}

		c.Heal()
		for _, p := range [][2]*Host{{a, b}, {b, a}, {a, d}, {d, a}} {
			waitPing(t, p[0], p[1])
		}
	})
	if left, err := leftovers(); err != nil || left != "" {
		t.Fatalf("after cleanup: left %s (err %v)", left, err)
	}
}

func ping(from, to *Host) error {
	_, err := run("ip", "netns", "exec", from.NS, "ping", "-c", "1", "-W", "1", to.IP)
	return err
}

func waitPing(t *testing.T, from, to *Host) {
	t.Helper()
	WaitFor(t, 10*time.Second, fmt.Sprintf("%s to ping %s", from.Name, to.Name), func() error { return ping(from, to) })
}

// TestHarnessProcesses checks Start, Pause, Resume, Kill, Restart and Run
// with ordinary programs standing in for the daemon.
func TestHarnessProcesses(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		c := NewCluster(t, 1)
		h := c.Host(0)

		// Each host sees its own hostname and only its own address.
		out, _, err := h.runBinary("/usr/bin/hostname", 10*time.Second)
		if err != nil || strings.TrimSpace(out) != h.Name {
			t.Errorf("hostname in %s = %q, %v; want %q", h.NS, out, err, h.Name)
		}
		ipPath, err := exec.LookPath("ip")
		if err != nil {
			t.Fatalf("ip: %v", err)
		}
		out, _, err = h.runBinary(ipPath, 10*time.Second, "-4", "-o", "addr", "show")
		if err != nil || !strings.Contains(out, h.IP+"/24") {
			t.Errorf("addresses in %s = %q, %v; want %s", h.NS, out, err, h.IP)
		}

		h.startBinary("/bin/sleep", "600")
		pid := h.proc.cmd.Process.Pid
		if !h.Running() {
			t.Fatalf("sleep not running after Start")
		}
		pids, err := netnsPids(h.NS)
		if err != nil || !contains(pids, pid) {
			t.Errorf("pid %d not among %s's processes %v (%v)", pid, h.NS, pids, err)
		}

		// Start returns once the wrapper has exec'ed into the program.
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "sleep" {
			t.Errorf("after Start, pid %d runs %q (%v); want sleep", pid, comm, err)
		}
		h.Pause()
		waitProcState(t, pid, "T")
		h.Resume()
		waitProcState(t, pid, "S")

		h.Kill()
		if h.Running() {
			t.Errorf("still running after Kill")
		}
		if err := h.CheckRunning(); err != nil {
			t.Errorf("CheckRunning after a harness Kill: %v", err)
		}
		if pids, _ := netnsPids(h.NS); len(pids) != 0 {
			t.Errorf("processes %v left in %s after Kill", pids, h.NS)
		}

		// Restart starts the last program again with the same arguments,
		// from stopped or from running.
		h.Restart()
		if !h.Running() || h.proc.cmd.Process.Pid == pid {
			t.Fatalf("not restarted after Kill")
		}
		pid2 := h.proc.cmd.Process.Pid
		h.Restart()
		if !h.Running() || h.proc.cmd.Process.Pid == pid2 {
			t.Fatalf("not restarted while running")
		}
		if args := h.proc.cmd.Args; args[len(args)-1] != "600" {
			t.Errorf("restarted with %v; want the last arguments", args)
		}
		h.Kill()

		// A daemon that dies on its own is a permanent failure for WaitFor.
		h.startBinary("/bin/sh", "-c", "exit 3")
		err = Poll(10*time.Second, func() error {
			if h.Running() {
				return errors.New("still running")
			}
			return h.CheckRunning()
		})
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Poll on a crashed daemon = %v; want a permanent error with its exit status", err)
		}

		// Run kills what outlives its deadline and says so.
		_, _, err = h.runBinary("/bin/sleep", 500*time.Millisecond, "30")
		if !errors.Is(err, ErrStillRunning) {
			t.Errorf("Run past its deadline = %v; want ErrStillRunning", err)
		}

		// Left running on purpose: teardown must kill it.
		h.startBinary("/bin/sleep", "600")
	})
	if left, err := leftovers(); err != nil || left != "" {
		t.Fatalf("after cleanup: left %s (err %v)", left, err)
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// waitProcState waits for /proc/PID/stat to show state (S sleeping, T
// stopped).
func waitProcState(t *testing.T, pid int, state string) {
	t.Helper()
	WaitFor(t, 5*time.Second, fmt.Sprintf("pid %d in state %s", pid, state), func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		// "pid (comm) S ...": the state follows the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) == 0 || f[0] != state {
			return fmt.Errorf("state %v", f)
		}
		return nil
	})
}

// TestHarnessSweep plants leftovers like an interrupted run's (a namespace
// with a process in it, a veth-named link) and checks the sweep removes
// them and nothing else.
func TestHarnessSweep(t *testing.T) {
	if err := checkPrereqs(); err != nil {
		t.Fatalf("%v", err)
	}
	ns, link := hostNS(maxHosts-1), hostVeth(maxHosts-1)
	const bystander = "hvex-e2e" // "hve" but not "hve<digits>": not ours
	t.Cleanup(func() {
		_, _ = run("ip", "link", "delete", bystander)
		_ = sweep()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		// Bridges, because this kernel has no dummy links.
		{"link", "add", link, "type", "bridge"},
		{"link", "add", bystander, "type", "bridge"},
	} {
		if _, err := run("ip", args...); err != nil {
			t.Fatalf("plant leftover: %v", err)
		}
	}
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sleeper.Start(); err != nil {
		t.Fatalf("plant process: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	WaitFor(t, 5*time.Second, "the planted process to enter "+ns, func() error {
		pids, err := netnsPids(ns)
		if err != nil || len(pids) == 0 {
			return fmt.Errorf("pids %v, %v", pids, err)
		}
		return nil
	})

	if err := sweep(); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("sweep left the process in %s running", ns)
	}
	if left, err := leftovers(); err != nil || left != "" {
		t.Errorf("after sweep: left %s (err %v)", left, err)
	}
	if _, err := run("ip", "link", "show", bystander); err != nil {
		t.Errorf("sweep deleted %s, which is not the harness's: %v", bystander, err)
	}
}

// TestHarnessNftScript pins the partition ruleset's shape: an atomic
// replace of the one table, and nothing but a delete when healed.
func TestHarnessNftScript(t *testing.T) {
	healed := nftScript(nil)
	if healed != "table inet hive_e2e {}\ndelete table inet hive_e2e\n" {
		t.Errorf("healed script = %q", healed)
	}
	s := nftScript([]string{"198.18.0.11", "198.18.0.12"})
	for _, want := range []string{
		"ip saddr { 198.18.0.11, 198.18.0.12 } drop",
		"ip daddr { 198.18.0.11, 198.18.0.12 } drop",
		"hook input", "hook output",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasPrefix(s, healed) {
		t.Errorf("script does not start by replacing the table:\n%s", s)
	}
}
