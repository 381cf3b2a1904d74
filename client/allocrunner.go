package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/netenforce/allocnet"
	"github.com/hivesec/hive/structs"
)

// Timeouts of driver calls. The driver waits while containerd restarts, so
// every call is bounded.
const (
	defaultKillTimeout = 10 * time.Second
	pullTimeout        = 10 * time.Minute
	startTimeout       = 2 * time.Minute
	destroyTimeout     = time.Minute
	listTimeout        = 30 * time.Second
)

// runnerConfig is what every allocation runner of an agent shares.
type runnerConfig struct {
	driver   driver.Driver
	allocDir string
	nodeID   string
	logger   hclog.Logger
	// killTimeout is how long a stopped task gets between SIGTERM and
	// SIGKILL.
	killTimeout time.Duration
	// report queues a state report for the managers.
	report func(structs.AllocUpdate)
	now    func() time.Time

	// Secret delivery (secrets.go): where values come from, how the
	// per-allocation tmpfs is made, and the host path of the hive binary
	// that runs `secret-exec` inside containers of tasks with env secrets.
	// checkHelper says whether that binary can run there (checkStatic when
	// nil); it is called once.
	secrets secretSource
	mounter secretMounter
	helper  string
	// network sets up allocations' network namespaces; nil runs tasks
	// without one (containerd's default: loopback only).
	network     allocNetwork
	checkHelper func(path string) error
	helperOnce  sync.Once
	helperErr   error
}

// helperError says why the secret-exec helper cannot run in containers,
// or nil.
func (c *runnerConfig) helperError() error {
	c.helperOnce.Do(func() {
		switch {
		case c.helper == "":
			c.helperErr = errors.New("secrets as environment variables need the hive binary, and its path is unknown")
		case c.checkHelper != nil:
			c.helperErr = c.checkHelper(c.helper)
		default:
			c.helperErr = checkStatic(c.helper)
		}
	})
	return c.helperErr
}

// allocNetwork is the dataplane as allocation runners use it.
type allocNetwork interface {
	setup(ctx context.Context, allocID string) (*allocnet.Attachment, error)
	publish(allocID string, ports []structs.PortMapping, prev []structs.PublishedPort, addr netip.Addr) ([]structs.PublishedPort, error)
	waitEnforced(ctx context.Context, allocID string, addr netip.Addr) error
	teardown(allocID string) error
}

// allocRunner runs one allocation's tasks and reports their states. Its
// life: pending (tasks starting) → running (all tasks started) → complete
// (all tasks exited 0, or stopped) or failed (a task failed for good, which
// stops its siblings). Agent shutdown ends it without touching containers.
type allocRunner struct {
	cfg   *runnerConfig
	alloc *structs.Allocation
	ctx   context.Context // the agent's: cancelled at shutdown

	mu          sync.Mutex
	states      map[string]*structs.TaskState
	status      string
	description string
	failed      bool // a task failed for good; description says which
	// lost: the managers gave the allocation up (its node was down); the
	// runner stops it without reporting, so "lost" stays the last word.
	lost bool

	stopOnce sync.Once
	stopCh   chan struct{} // closed when the allocation must stop
	done     chan struct{} // closed when every task runner returned

	// runners by task name, set before any of them runs.
	runners map[string]*taskRunner
	// secrets delivers the tasks' secrets (nil when they have none);
	// prestartErr, when set before the runners start (secrets or network
	// could not be prepared), fails every task.
	secrets     *allocSecrets
	prestartErr error
	// address is the allocation's IP once its network is set up, and
	// published its published ports.
	address   string
	published []structs.PublishedPort
}

func newAllocRunner(ctx context.Context, cfg *runnerConfig, alloc *structs.Allocation) *allocRunner {
	ar := &allocRunner{cfg: cfg, alloc: alloc, ctx: ctx, states: map[string]*structs.TaskState{},
		stopCh: make(chan struct{}), done: make(chan struct{})}
	for _, t := range alloc.Tasks {
		ts := &structs.TaskState{State: structs.TaskPending}
		// Carry over what the managers know (restarts, start time, a dead
		// task) so an agent restart does not reset history.
		if prev := alloc.TaskStates[t.Name]; prev != nil {
			cp := *prev
			ts = &cp
			if ts.State != structs.TaskDead {
				ts.State = structs.TaskPending // until re-attached or started
			}
		}
		ar.states[t.Name] = ts
	}
	ar.status = allocStatus(alloc.Tasks, ar.states)
	if ar.status == structs.AllocComplete || ar.status == structs.AllocFailed {
		// Only reachable when restoring; the runner decides afresh below.
		ar.status = structs.AllocPending
	}
	return ar
}

// run starts a task runner per task; restore holds containers found at
// agent start, by task name. When the tasks reference secrets, the
// runners start once the secrets are delivered, and the allocation's
// secret tmpfs is removed when they are all done.
func (ar *allocRunner) run(restore map[string]driver.TaskStatus) {
	ar.push()
	ar.runners = map[string]*taskRunner{}
	for _, t := range ar.alloc.Tasks {
		cfg := driverConfig(ar.alloc, t, ar.cfg.allocDir, ar.cfg.nodeID)
		if len(t.Secrets) > 0 {
			addSecretMounts(&cfg, t, secretsDir(ar.cfg.allocDir, ar.alloc.ID), ar.cfg.helper)
		}
		ar.runners[t.Name] = &taskRunner{ar: ar, task: t, cfg: cfg,
			restart:   restartTracker{policy: t.Restart},
			restartCh: make(chan string, 1),
			logger:    ar.cfg.logger.With("alloc", ar.alloc.ID, "task", t.Name)}
	}
	if !hasSecrets(ar.alloc) && ar.cfg.network == nil {
		ar.startRunners(restore, nil)
		return
	}
	if hasSecrets(ar.alloc) {
		ar.secrets = newAllocSecrets(ar)
	}
	go func() {
		err := ar.prepareNetwork()
		switch {
		case ar.ctx.Err() != nil:
			// Agent shutdown: containers, namespaces and the tmpfs stay
			// for the next agent.
			close(ar.done)
			return
		case errors.Is(err, errStopped):
		case err != nil:
			ar.cfg.logger.Error("cannot set up the allocation's network", "alloc", ar.alloc.ID, "error", err)
			ar.prestartErr = fmt.Errorf("network: %w", err)
		}
		var watch func(context.Context)
		if ar.secrets != nil && err == nil {
			running := map[string]bool{}
			for name, st := range restore {
				running[name] = st.State == driver.StateRunning
			}
			err := ar.secrets.prepare(running)
			switch {
			case ar.ctx.Err() != nil:
				close(ar.done)
				return
			case errors.Is(err, errStopped):
				// The runners see the stop and end the tasks.
			case err != nil:
				ar.secrets.logger.Error("cannot deliver the allocation's secrets", "error", err)
				ar.prestartErr = fmt.Errorf("secrets: %w", err)
			}
			if err == nil {
				watch = ar.secrets.watch
			}
		}
		ar.startRunners(restore, watch)
	}()
}

// prepareNetwork gives the allocation its network namespace and address,
// reports the address, and waits until the node enforces policy on it, so
// no task runs before the policy that covers it. Nil without a dataplane.
func (ar *allocRunner) prepareNetwork() error {
	n := ar.cfg.network
	if n == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ar.ctx)
	defer cancel()
	go func() {
		select {
		case <-ar.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	stopped := func(err error) error {
		if ar.stopping() {
			return errStopped
		}
		return err
	}
	at, err := n.setup(ctx, ar.alloc.ID)
	if err != nil {
		return stopped(err)
	}
	for _, tr := range ar.runners {
		tr.cfg.NetNSPath = at.NetnsPath
	}
	pub, err := n.publish(ar.alloc.ID, ar.alloc.Ports, ar.alloc.Published, at.Addr)
	if err != nil {
		return err
	}
	ar.mu.Lock()
	ar.address, ar.published = at.Addr.String(), pub
	ar.mu.Unlock()
	ar.push()
	return stopped(n.waitEnforced(ctx, ar.alloc.ID, at.Addr))
}

// startRunners runs the task runners and, while they run, watch (when
// not nil); once all are done it removes the secrets, unless the agent is
// shutting down, and closes done.
func (ar *allocRunner) startRunners(restore map[string]driver.TaskStatus, watch func(context.Context)) {
	var wg sync.WaitGroup
	for _, t := range ar.alloc.Tasks {
		tr := ar.runners[t.Name]
		var rs *driver.TaskStatus
		if st, ok := restore[t.Name]; ok {
			rs = &st
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.run(rs)
		}()
	}
	wctx, wcancel := context.WithCancel(ar.ctx)
	watchDone := make(chan struct{})
	if watch != nil {
		go func() {
			defer close(watchDone)
			watch(wctx)
		}()
	} else {
		close(watchDone)
	}
	go func() {
		wg.Wait()
		wcancel()
		<-watchDone
		if ar.secrets != nil && ar.ctx.Err() == nil {
			ar.secrets.cleanup()
		}
		if n := ar.cfg.network; n != nil && ar.ctx.Err() == nil {
			if err := n.teardown(ar.alloc.ID); err != nil {
				ar.cfg.logger.Warn("cannot remove the allocation's network", "alloc", ar.alloc.ID, "error", err)
			}
		}
		close(ar.done)
	}()
}

// requestRestart asks a task's runner to restart it (a secret changed);
// a request already pending covers this one.
func (ar *allocRunner) requestRestart(task, reason string) {
	tr := ar.runners[task]
	if tr == nil {
		return
	}
	select {
	case tr.restartCh <- reason:
	default:
	}
}

// taskRunning reports whether task's container is running.
func (ar *allocRunner) taskRunning(task string) bool {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	ts := ar.states[task]
	return ts != nil && ts.State == structs.TaskRunning
}

// stop asks every task to stop (desired status stop, or a sibling failed).
func (ar *allocRunner) stop(reason string) {
	ar.stopOnce.Do(func() {
		ar.mu.Lock()
		if ar.description == "" {
			ar.description = reason
		}
		ar.mu.Unlock()
		close(ar.stopCh)
	})
}

func (ar *allocRunner) stopping() bool {
	select {
	case <-ar.stopCh:
		return true
	default:
		return false
	}
}

// setTask changes a task's state and reports the allocation.
func (ar *allocRunner) setTask(name string, fn func(ts *structs.TaskState)) {
	if ar.ctx.Err() != nil {
		return // shutting down: the next agent reports from what it finds
	}
	ar.mu.Lock()
	fn(ar.states[name])
	ar.mu.Unlock()
	ar.push()
}

// setTaskIf is setTask that reports only when fn says it changed
// something.
func (ar *allocRunner) setTaskIf(name string, fn func(ts *structs.TaskState) bool) {
	if ar.ctx.Err() != nil {
		return
	}
	ar.mu.Lock()
	ts := ar.states[name]
	changed := ts != nil && fn(ts)
	ar.mu.Unlock()
	if changed {
		ar.push()
	}
}

// markLost silences the runner's reports; see lost.
func (ar *allocRunner) markLost() {
	ar.mu.Lock()
	ar.lost = true
	ar.mu.Unlock()
}

// push recomputes the client status and queues a report.
func (ar *allocRunner) push() {
	ar.mu.Lock()
	ar.status = allocStatus(ar.alloc.Tasks, ar.states)
	if ar.lost {
		ar.mu.Unlock()
		return
	}
	up := structs.AllocUpdate{ID: ar.alloc.ID, ClientStatus: ar.status, ClientDescription: ar.description,
		TaskStates: copyStates(ar.states), Address: ar.address, Published: ar.published}
	ar.mu.Unlock()
	ar.cfg.report(up)
}

// taskFailed records that a task failed for good and stops its siblings.
func (ar *allocRunner) taskFailed(task, why string) {
	msg := fmt.Sprintf("task %s failed: %s", task, why)
	ar.mu.Lock()
	if !ar.failed {
		ar.failed, ar.description = true, msg
	}
	ar.mu.Unlock()
	ar.stop(msg)
}

// snapshot returns the client status and a copy of the task states.
func (ar *allocRunner) snapshot() (string, map[string]*structs.TaskState) {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.status, copyStates(ar.states)
}

// taskDead reports whether task will produce no more output.
func (ar *allocRunner) taskDead(task string) (dead, known bool) {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	ts, ok := ar.states[task]
	if !ok {
		return false, false
	}
	return ts.State == structs.TaskDead, true
}

func (ar *allocRunner) finished() bool {
	select {
	case <-ar.done:
		return true
	default:
		return false
	}
}
