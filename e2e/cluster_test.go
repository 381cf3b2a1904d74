package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// Acceptance tests for the manager cluster: formation, leader failover,
// partitions, join security and snapshots. Each test builds its own cluster
// (a few seconds) and runs its scenario as a sequence of steps on it; the
// steps depend on each other, so they are not subtests.

// TestFormationAndLeaderFailover: init on host0, two managers and a worker
// join; three voters with one leader; four nodes alive. Then SIGKILL the
// leader: the two survivors elect a new one and accept a write; the old
// leader, restarted, comes back as a follower and catches up.
func TestFormationAndLeaderFailover(t *testing.T) {
	c := NewCluster(t, 4)
	c.Bootstrap(3, 1)
	managers, worker := c.Managers(), c.Workers()[0]

	// --- formation
	if err := c.checkVoters(c.Host(0), managers); err != nil {
		t.Fatalf("raft peers after bootstrap: %v", err)
	}
	leader, err := c.Leader(c.Host(0))
	if err != nil {
		t.Fatalf("leader after bootstrap: %v", err)
	}
	nodes, err := c.Nodes(c.Host(0))
	if err != nil {
		t.Fatalf("node ls: %v", err)
	}
	if len(nodes) != 4 {
		t.Fatalf("node ls lists %d nodes, want 4: %+v", len(nodes), nodes)
	}
	leaderFlags := 0
	for _, n := range nodes {
		h := c.hostFor(n.ID, n.Address)
		if h == nil {
			t.Fatalf("node ls lists unknown node %+v", n)
		}
		if n.ID != h.NodeID() {
			t.Errorf("node ls: %s has id %s, its node.json says %s", h.Name, n.ID, h.NodeID())
		}
		wantRole := structs.RoleManager
		if h == worker {
			wantRole = structs.RoleWorker
		}
		if n.Role != wantRole {
			t.Errorf("node ls: %s has role %q, want %q", h.Name, n.Role, wantRole)
		}
		if n.Status != structs.NodeStatusReady {
			t.Errorf("node ls: %s has status %q, want %q", h.Name, n.Status, structs.NodeStatusReady)
		}
		if n.Leader {
			leaderFlags++
			if h != leader {
				t.Errorf("node ls marks %s leader; raft peers say %s", h.Name, leader.Name)
			}
		}
	}
	if leaderFlags != 1 {
		t.Errorf("node ls marks %d nodes leader, want 1: %+v", leaderFlags, nodes)
	}
	if t.Failed() {
		t.FailNow()
	}

	// --- kill -9 the leader
	var survivors []*Host
	for _, m := range managers {
		if m != leader {
			survivors = append(survivors, m)
		}
	}
	c.UseAPI(survivors[0])
	t.Logf("killing leader %s; writing through %s", leader.Name, survivors[0].Name)
	killed := time.Now()
	leader.Kill()
	var written string
	for attempt := 1; written == ""; attempt++ {
		if time.Since(killed) > 90*time.Second {
			t.Fatalf("no write succeeded within 90s of killing the leader (%d attempts)", attempt-1)
		}
		tried := time.Now()
		name := fmt.Sprintf("failover-%d", attempt)
		if _, _, err := c.CLI("namespace", "create", name); err == nil {
			written = name
			break
		}
		// Retry about every 100 ms; a slow failure retries at once.
		time.Sleep(100*time.Millisecond - time.Since(tried))
	}
	reportMetric(t, "leader kill → first successful write", time.Since(killed))

	var newLeader *Host
	c.WaitFor(30*time.Second, "a survivor to lead", func() error {
		l, err := c.Leader(survivors[0])
		if err != nil {
			return err
		}
		if !slices.Contains(survivors, l) {
			return fmt.Errorf("%s still names %s leader", survivors[0].Name, l.Name)
		}
		newLeader = l
		return nil
	})
	t.Logf("new leader: %s", newLeader.Name)

	// --- the old leader comes back as a follower and has the write
	leader.Restart()
	c.WaitFor(90*time.Second, leader.Name+" back as a non-leader voter", func() error {
		if err := c.checkVoters(newLeader, managers); err != nil {
			return err
		}
		l, err := c.Leader(newLeader)
		if err != nil {
			return err
		}
		if l == leader {
			return Permanent(fmt.Errorf("restarted %s took the leadership back", leader.Name))
		}
		return nil
	})
	c.WaitFor(60*time.Second, leader.Name+" to have namespace "+written, func() error {
		return hasNamespaces(c, leader, written)
	})
	c.WaitFor(60*time.Second, "all 4 nodes alive again", func() error {
		return c.nodesAlive(newLeader, append(slices.Clone(managers), worker))
	})
}

// TestPartition cuts the leader off from the two other managers: the
// majority elects a leader and takes writes, the old leader refuses writes
// once it steps down, and after healing all three agree on one leader and
// hold every acknowledged write and none of the refused ones.
func TestPartition(t *testing.T) {
	c := NewCluster(t, 3)
	c.Bootstrap(3, 0)
	managers := c.Managers()

	var old *Host
	c.WaitFor(30*time.Second, "a leader", func() (err error) {
		old, err = c.Leader(c.Host(0))
		return err
	})
	var majority []*Host
	for _, m := range managers {
		if m != old {
			majority = append(majority, m)
		}
	}
	acked := []string{}
	if _, _, err := c.CLIOn(old, "namespace", "create", "before-partition"); err != nil {
		t.Fatalf("write before the partition: %v", err)
	}
	acked = append(acked, "before-partition")

	c.Partition([]*Host{old}, majority)

	var newLeader *Host
	c.WaitFor(60*time.Second, "the majority to elect a leader", func() error {
		l, err := c.Leader(majority[0])
		if err != nil {
			return err
		}
		if !slices.Contains(majority, l) {
			return fmt.Errorf("%s still names %s leader", majority[0].Name, l.Name)
		}
		newLeader = l
		return nil
	})
	t.Logf("majority leader: %s", newLeader.Name)
	c.WaitFor(30*time.Second, "a write on the majority side", func() error {
		_, _, err := c.CLIOn(majority[0], "namespace", "create", "majority-write")
		return err
	})
	acked = append(acked, "majority-write")

	// The old leader may take a moment to notice it lost its quorum; from
	// then on every write it gets must fail. Three failures in a row count
	// as consistent. A write it acknowledges is recorded and must survive.
	var refused []string
	attempt, streak := 0, 0
	c.WaitFor(90*time.Second, "writes to the minority to fail consistently", func() error {
		attempt++
		name := fmt.Sprintf("minority-%d", attempt)
		_, stderr, err := c.CLIOn(old, "namespace", "create", name)
		switch {
		case err == nil:
			t.Logf("minority %s acknowledged %s; it must survive the heal", old.Name, name)
			acked = append(acked, name)
			streak = 0
		case strings.TrimSpace(stderr) == "":
			// A hang (CLI timeout) or a silent exit is not a clear refusal.
			t.Logf("write %s to the minority: %v (no error message)", name, err)
			refused = append(refused, name)
			streak = 0
		default:
			refused = append(refused, name)
			streak++
			if streak == 1 {
				t.Logf("minority refuses writes: %s", strings.TrimSpace(stderr))
			}
		}
		if streak < 3 {
			return fmt.Errorf("%d consecutive refusals so far", streak)
		}
		return nil
	})

	c.Heal()
	c.WaitFor(90*time.Second, "all managers to agree on one leader", func() error {
		var first *Host
		for _, m := range managers {
			if err := c.checkVoters(m, managers); err != nil {
				return err
			}
			l, err := c.Leader(m)
			if err != nil {
				return err
			}
			if first == nil {
				first = l
			} else if l != first {
				return fmt.Errorf("%s names %s leader, %s names %s", managers[0].Name, first.Name, m.Name, l.Name)
			}
		}
		return nil
	})
	for _, m := range managers {
		c.WaitFor(60*time.Second, m.Name+" to hold every acknowledged write", func() error {
			return hasNamespaces(c, m, acked...)
		})
	}
	for _, m := range managers {
		have, err := c.Namespaces(m)
		if err != nil {
			t.Fatalf("namespaces on %s: %v", m.Name, err)
		}
		for _, name := range refused {
			if have[name] {
				t.Errorf("%s holds %s, a write the partitioned old leader refused", m.Name, name)
			}
		}
	}
}

// TestJoinSecurity: a token pinning another CA, an expired, a revoked and an
// exhausted token are all refused and leave the cluster as it was; a
// removed node's certificate stops working.
func TestJoinSecurity(t *testing.T) {
	c := NewCluster(t, 4)
	c.Bootstrap(1, 1)
	mgr, worker, spare, extra := c.Host(0), c.Host(1), c.Host(2), c.Host(3)
	addr := mgr.APIAddr()

	baseNodes, basePeers := clusterMembers(t, c, mgr)

	// --- a token whose CA pin is not this cluster's
	badPin := swapPin(t, c.WorkerToken)
	_, stderr, err := spare.Run(60*time.Second, spare.JoinArgs(addr, badPin)...)
	requireRefused(t, "join with a token pinning another CA", stderr, err)
	if !strings.Contains(strings.ToLower(stderr), "pin") {
		t.Errorf("join with a wrong CA pin: stderr does not mention the pin:\n%s", stderr)
	}
	if nodes, peers := clusterMembers(t, c, mgr); !slices.Equal(nodes, baseNodes) || !slices.Equal(peers, basePeers) {
		t.Errorf("after a refused join: nodes %v peers %v; before: nodes %v peers %v", nodes, peers, baseNodes, basePeers)
	}

	// --- expired
	expired := createToken(t, c, "--ttl", "1s")
	time.Sleep(2 * time.Second) // past the TTL; not a performance bound
	spare.ResetData()
	_, stderr, err = spare.Run(60*time.Second, spare.JoinArgs(addr, expired.Token)...)
	requireRefused(t, "join with an expired token", stderr, err)

	// --- revoked
	revoked := createToken(t, c)
	c.MustCLI("join-token", "revoke", revoked.Info.ID)
	if tok := findToken(t, c, revoked.Info.ID); tok == nil || !tok.Revoked {
		t.Errorf("token ls after revoke: %+v; want %s revoked", tok, revoked.Info.ID)
	}
	spare.ResetData()
	_, stderr, err = spare.Run(60*time.Second, spare.JoinArgs(addr, revoked.Token)...)
	requireRefused(t, "join with a revoked token", stderr, err)

	// --- exhausted: one use, taken by extra, then refused to spare
	once := createToken(t, c, "--uses", "1")
	extra.Join(addr, once.Token)
	c.waitRole(extra, structs.RoleWorker)
	if tok := findToken(t, c, once.Info.ID); tok == nil || tok.Uses != 1 {
		t.Errorf("token ls after one join: %+v; want uses 1", tok)
	}
	spare.ResetData()
	_, stderr, err = spare.Run(60*time.Second, spare.JoinArgs(addr, once.Token)...)
	requireRefused(t, "join with an exhausted token", stderr, err)

	wantNodes := slices.Sorted(slices.Values(append(slices.Clone(baseNodes), extra.NodeID())))
	if nodes, peers := clusterMembers(t, c, mgr); !slices.Equal(nodes, wantNodes) || !slices.Equal(peers, basePeers) {
		t.Errorf("after the refused joins: nodes %v peers %v; want nodes %v peers %v", nodes, peers, wantNodes, basePeers)
	}

	// --- a removed node's certificate is refused
	client, err := worker.TLSClient()
	if err != nil {
		t.Fatalf("worker identity: %v", err)
	}
	self := mgr.URL() + "/v1/node/self"
	// Control: the certificate works before removal, so a refusal later
	// is the removal's doing.
	if code, err := getStatus(client, self); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s with the worker's certificate before removal: status %d, %v; want 200", self, code, err)
	}
	workerID := worker.NodeID()
	// Stopped first so the node is not re-registering while it goes; the
	// server may also refuse to remove a node it still sees alive, hence
	// the retry.
	worker.Kill()
	c.WaitFor(60*time.Second, "node remove "+workerID, func() error {
		_, _, err := c.CLI("node", "remove", workerID)
		return err
	})
	c.WaitFor(30*time.Second, "the removed node's certificate to be refused", func() error {
		code, err := getStatus(client, self)
		switch {
		case err != nil:
			t.Logf("removed node's call fails: %v", err)
			return nil // TLS handshake refused
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			t.Logf("removed node's call answered %d", code)
			return nil
		}
		return fmt.Errorf("GET /v1/node/self with the removed node's certificate: status %d", code)
	})
	nodes, _ := clusterMembers(t, c, mgr)
	if slices.Contains(nodes, workerID) {
		t.Errorf("node ls still lists removed node %s", workerID)
	}
}

// TestSnapshotSaveRestore: restore brings namespaces, nodes and join tokens
// back to the moment of the save on every manager; inspect counts tables;
// a corrupted file is refused and changes nothing.
func TestSnapshotSaveRestore(t *testing.T) {
	c := NewCluster(t, 3)
	c.Bootstrap(3, 0)
	managers := c.Managers()
	dir := t.TempDir()

	for _, ns := range []string{"snap-a", "snap-b"} {
		c.MustCLI("namespace", "create", ns)
	}
	kept := createToken(t, c, "--uses", "5")
	var saved clusterState
	c.WaitFor(30*time.Second, "the writes before the save", func() (err error) {
		saved, err = readState(c, c.API())
		if err == nil && !(saved.namespaces["snap-a"] && saved.namespaces["snap-b"] && saved.tokens[kept.Info.ID] != "") {
			err = fmt.Errorf("state %v", saved)
		}
		return err
	})

	file := filepath.Join(dir, "cluster.snap")
	c.MustCLI("operator", "snapshot", "save", file)
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot save wrote %v (%v)", fi, err)
	}
	var info structs.SnapshotInfo
	if err := c.CLIJSON(&info, "operator", "snapshot", "inspect", file); err != nil {
		t.Fatalf("snapshot inspect: %v", err)
	}
	t.Logf("snapshot: %+v", info)
	if info.Index == 0 || info.Size == 0 {
		t.Errorf("snapshot inspect: index %d size %d; want both > 0", info.Index, info.Size)
	}
	if got := info.Tables["namespaces"]; got != len(saved.namespaces) {
		t.Errorf("snapshot inspect: %d namespaces, want %d", got, len(saved.namespaces))
	}
	if got, ok := info.Tables["nodes"]; ok && got != len(saved.nodes) {
		t.Errorf("snapshot inspect: %d nodes, want %d", got, len(saved.nodes))
	}

	// Change every kind of state the restore must undo.
	c.MustCLI("namespace", "delete", "snap-a")
	c.MustCLI("namespace", "create", "snap-c")
	c.MustCLI("join-token", "revoke", kept.Info.ID)
	later := createToken(t, c)
	// On every manager, so that a lagging follower cannot pass the restore
	// check below by still showing the old state.
	waitState(c, managers, "the writes after the save", func(st clusterState) error {
		if st.namespaces["snap-a"] || !st.namespaces["snap-c"] || st.tokens[later.Info.ID] == "" {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})

	c.MustCLI("operator", "snapshot", "restore", file)
	waitState(c, managers, "the state as saved", saved.diff)

	// A corrupted copy: refused with a clear error, nothing changes.
	c.MustCLI("namespace", "create", "snap-d")
	var before clusterState
	c.WaitFor(30*time.Second, "namespace snap-d", func() (err error) {
		before, err = readState(c, c.API())
		if err == nil && !before.namespaces["snap-d"] {
			err = errors.New("snap-d not listed yet")
		}
		return err
	})
	waitState(c, managers, "every manager to agree before the bad restore", before.diff)
	bad := filepath.Join(dir, "corrupt.snap")
	corruptCopy(t, file, bad)
	_, stderr, err := c.CLI("operator", "snapshot", "restore", bad)
	if err == nil {
		t.Fatalf("restore of a corrupted snapshot succeeded")
	}
	if s := strings.ToLower(stderr); !strings.Contains(s, "checksum") && !strings.Contains(s, "corrupt") {
		t.Errorf("restore of a corrupted snapshot: stderr does not say checksum or corrupt:\n%s", stderr)
	}
	// Checked at once and again a little later, in case a restore that
	// failed late still changed something on the way.
	for range 2 {
		for _, m := range managers {
			st, err := readState(c, m)
			if err != nil {
				t.Fatalf("state on %s after the refused restore: %v", m.Name, err)
			}
			if err := before.diff(st); err != nil {
				t.Fatalf("state on %s changed by a refused restore: %v", m.Name, err)
			}
		}
		time.Sleep(2 * time.Second)
	}
}

// ---- helpers ----

// reportMetric logs a measured duration; without -v it is printed too, so
// the number shows in any run.
func reportMetric(t *testing.T, what string, d time.Duration) {
	t.Helper()
	t.Logf("%s: %v", what, d.Round(time.Millisecond))
	if !testing.Verbose() {
		fmt.Printf("%s: %s: %v\n", t.Name(), what, d.Round(time.Millisecond))
	}
}

// hasNamespaces checks that h lists every name.
func hasNamespaces(c *Cluster, h *Host, names ...string) error {
	have, err := c.Namespaces(h)
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks namespaces %v", h.Name, missing)
	}
	return nil
}

// requireRefused fails the test unless a one-shot hive command exited
// non-zero with an error message. ErrStillRunning means the join was
// accepted and hive went on running as a node.
func requireRefused(t *testing.T, what, stderr string, err error) {
	t.Helper()
	switch {
	case errors.Is(err, ErrStillRunning):
		t.Fatalf("%s: not refused: hive join was still running (joined?) at the deadline\nstderr:\n%s", what, stderr)
	case err == nil:
		t.Fatalf("%s: exited 0; want a refusal\nstderr:\n%s", what, stderr)
	case strings.TrimSpace(stderr) == "":
		t.Fatalf("%s: failed (%v) without an error message on stderr", what, err)
	}
	t.Logf("%s refused: %s", what, strings.TrimSpace(stderr))
}

// swapPin returns tok with its CA pin replaced by another well-formed one:
// the base32 of a random SHA-256, in the token's letter case.
func swapPin(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.SplitN(tok, "-", 3)
	if len(parts) != 3 || parts[0] != "HIVE1" || len(parts[1]) != 52 {
		t.Fatalf("token %q is not HIVE1-<52-char pin>-<secret>", redact(tok))
	}
	sum := sha256.Sum256([]byte(rand.Text()))
	pin := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])
	if strings.ToLower(parts[1]) == parts[1] {
		pin = strings.ToLower(pin)
	}
	if strings.EqualFold(pin, parts[1]) {
		t.Fatalf("random pin equals the real one")
	}
	return parts[0] + "-" + pin + "-" + parts[2]
}

// redact keeps a token's shape but not its secret, for messages.
func redact(tok string) string {
	if len(tok) <= 16 {
		return strings.Repeat("*", len(tok))
	}
	return tok[:16] + "..."
}

// createToken makes a worker join token through the CLI.
func createToken(t *testing.T, c *Cluster, extra ...string) structs.JoinTokenCreateResponse {
	t.Helper()
	var resp structs.JoinTokenCreateResponse
	args := append([]string{"join-token", "create", "--role", "worker"}, extra...)
	if err := c.CLIJSON(&resp, args...); err != nil {
		t.Fatalf("%v", err)
	}
	if resp.Token == "" || resp.Info.ID == "" {
		t.Fatalf("token create returned no token or id: %+v", resp.Info)
	}
	if resp.Info.Role != structs.RoleWorker {
		t.Errorf("token create --role worker made a %q token", resp.Info.Role)
	}
	return resp
}

// findToken returns the join token id from `hive join-token ls`, or nil.
func findToken(t *testing.T, c *Cluster, id string) *structs.JoinTokenPublic {
	t.Helper()
	var toks []structs.JoinTokenPublic
	if err := c.CLIJSON(&toks, "join-token", "ls"); err != nil {
		t.Fatalf("%v", err)
	}
	for i := range toks {
		if toks[i].ID == id {
			return &toks[i]
		}
	}
	return nil
}

// clusterMembers returns the sorted node IDs and Raft peer IDs h reports.
func clusterMembers(t *testing.T, c *Cluster, h *Host) (nodes, peers []string) {
	t.Helper()
	ns, err := c.Nodes(h)
	if err != nil {
		t.Fatalf("%v", err)
	}
	ps, err := c.Peers(h)
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, n := range ns {
		nodes = append(nodes, n.ID)
	}
	for _, p := range ps {
		peers = append(peers, p.ID)
	}
	slices.Sort(nodes)
	slices.Sort(peers)
	return nodes, peers
}

// getStatus GETs url and returns the status code; err is a transport or
// TLS failure.
func getStatus(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// clusterState is what a snapshot restore must bring back, in a form that
// compares: namespace names, node IDs, and each join token's ID with the
// fields a restore must reset.
type clusterState struct {
	namespaces map[string]bool
	nodes      map[string]bool
	tokens     map[string]string // id -> "role revoked=.. uses=../.."
}

// waitState waits until every host's state passes check.
func waitState(c *Cluster, hosts []*Host, desc string, check func(clusterState) error) {
	c.t.Helper()
	for _, h := range hosts {
		c.WaitFor(60*time.Second, h.Name+": "+desc, func() error {
			st, err := readState(c, h)
			if err != nil {
				return err
			}
			return check(st)
		})
	}
}

func readState(c *Cluster, h *Host) (clusterState, error) {
	var st clusterState
	var err error
	if st.namespaces, err = c.Namespaces(h); err != nil {
		return st, err
	}
	nodes, err := c.Nodes(h)
	if err != nil {
		return st, err
	}
	st.nodes = map[string]bool{}
	for _, n := range nodes {
		st.nodes[n.ID] = true
	}
	var toks []structs.JoinTokenPublic
	if err := c.CLIJSONOn(h, &toks, "join-token", "ls"); err != nil {
		return st, err
	}
	st.tokens = map[string]string{}
	for _, tk := range toks {
		st.tokens[tk.ID] = fmt.Sprintf("%s revoked=%v uses=%d/%d", tk.Role, tk.Revoked, tk.Uses, tk.MaxUses)
	}
	return st, nil
}

func (s clusterState) String() string {
	return fmt.Sprintf("namespaces %v nodes %v tokens %v", sortedKeys(s.namespaces), sortedKeys(s.nodes), s.tokens)
}

// diff says how got differs from s, or nil.
func (s clusterState) diff(got clusterState) error {
	var d []string
	if a, b := sortedKeys(s.namespaces), sortedKeys(got.namespaces); !slices.Equal(a, b) {
		d = append(d, fmt.Sprintf("namespaces %v, want %v", b, a))
	}
	if a, b := sortedKeys(s.nodes), sortedKeys(got.nodes); !slices.Equal(a, b) {
		d = append(d, fmt.Sprintf("nodes %v, want %v", b, a))
	}
	for id, want := range s.tokens {
		if got.tokens[id] != want {
			d = append(d, fmt.Sprintf("token %s is %q, want %q", id, got.tokens[id], want))
		}
	}
	for id, have := range got.tokens {
		if _, ok := s.tokens[id]; !ok {
			d = append(d, fmt.Sprintf("token %s (%s) should not exist", id, have))
		}
	}
	if len(d) > 0 {
		return errors.New(strings.Join(d, "; "))
	}
	return nil
}

// corruptCopy copies src to dst with 16 bytes in the middle inverted, so the
// file keeps its size and framing but not its content.
func corruptCopy(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("corrupt copy: %v", err)
	}
	if len(b) < 64 {
		t.Fatalf("corrupt copy: snapshot is only %d bytes", len(b))
	}
	mid := len(b) / 2
	for i := mid; i < mid+16; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatalf("corrupt copy: %v", err)
	}
}
