package state

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// MaxEvents bounds the events table; older events are pruned on write.
const MaxEvents = 2048

// ErrNotFound is returned by writes that target a missing record.
var ErrNotFound = errors.New("not found")

// Store is the state store. Writes come only from the FSM; reads may run
// anywhere and see a consistent snapshot of one Raft index.
type Store struct {
	db     *memdb.MemDB
	schema *memdb.DBSchema
	// abandonCh is closed when the store is replaced by a snapshot restore,
	// waking blocking queries so they re-read the new store.
	abandonCh chan struct{}
}

// New returns an empty store.
func New() *Store {
	schema := mustSchema()
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		panic(fmt.Sprintf("state: %v", err)) // only a schema bug reaches here
	}
	return &Store{db: db, schema: schema, abandonCh: make(chan struct{})}
}

// Abandon marks the store as replaced.
func (s *Store) Abandon() { close(s.abandonCh) }

// AbandonCh is closed when the store is replaced.
func (s *Store) AbandonCh() <-chan struct{} { return s.abandonCh }

// Snapshot returns a read-only view that later writes do not change.
func (s *Store) Snapshot() *Snapshot { return &Snapshot{txn: s.db.Txn(false)} }

// Txn is a write transaction used by the FSM. One Raft entry is one Txn.
type Txn struct {
	txn   *memdb.Txn
	index uint64
	seq   int
	// bumped remembers which tables' index entries this transaction has
	// already written: a batch of many writes updates each entry once.
	bumped map[string]bool

	// Lookups by primary key do not read through txn. A read of an index
	// that the transaction has modified makes memdb clone the index's radix
	// transaction, and cloning throws away its cache of already-copied
	// nodes, so every following insert copies its whole path from the root
	// again: a batch of upserts, each reading before it writes, paid that
	// for every write. Instead a lookup answers from the records this
	// transaction wrote itself (written), and otherwise from base, the
	// state as it was when the transaction began, which is exact since
	// nothing else writes meanwhile (memdb allows one writer).
	schema  *memdb.DBSchema
	base    *memdb.Txn
	written map[tableKey]any // nil value: deleted in this transaction
	// usage accumulates per-node usage changes, written at commit.
	usage map[string]structs.Resources
}

type tableKey struct{ table, key string }

// Write opens a write transaction for the entry at index.
func (s *Store) Write(index uint64) *Txn {
	return &Txn{txn: s.db.Txn(true), index: index, schema: s.schema, base: s.db.Txn(false)}
}

// Commit writes the derived rows, makes the writes visible and fires
// watches. On error nothing is committed and the transaction is aborted.
func (t *Txn) Commit() error {
	if err := t.flushUsage(); err != nil {
		t.txn.Abort()
		return err
	}
	t.txn.Commit()
	return nil
}

// Abort discards the writes.
func (t *Txn) Abort() { t.txn.Abort() }

// Index is the Raft index this transaction writes at.
func (t *Txn) Index() uint64 { return t.index }

func (t *Txn) bump(table string) error {
	if t.bumped[table] {
		return nil
	}
	if t.bumped == nil {
		t.bumped = make(map[string]bool, 2)
	}
	t.bumped[table] = true
	if err := t.put(TableIndex, &IndexEntry{Key: table, Value: t.index}); err != nil {
		return fmt.Errorf("update index of %s: %w", table, err)
	}
	return nil
}

func (t *Txn) insert(table string, obj any) error {
	if err := t.put(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return t.bump(table)
}

// idIndexer is the primary-key indexer of table; memdb requires every
// table to have one, single-valued.
func (t *Txn) idIndexer(table string) primaryIndexer {
	return t.schema.Tables[table].Indexes["id"].Indexer.(primaryIndexer)
}

type primaryIndexer interface {
	memdb.Indexer
	memdb.SingleIndexer
}

// put inserts obj and records it for lookups. Every write of the
// transaction goes through put, remove or removeByID.
func (t *Txn) put(table string, obj any) error {
	ok, key, err := t.idIndexer(table).FromObject(obj)
	if err != nil {
		return err
	}
	if err := t.txn.Insert(table, obj); err != nil {
		return err
	}
	if ok { // memdb refuses an object without a primary key anyway
		t.record(table, key, obj)
	}
	return nil
}

// remove deletes obj.
func (t *Txn) remove(table string, obj any) error {
	ok, key, err := t.idIndexer(table).FromObject(obj)
	if err != nil {
		return err
	}
	if err := t.txn.Delete(table, obj); err != nil {
		return err
	}
	if ok {
		t.record(table, key, nil)
	}
	return nil
}

// removeByID deletes the record with primary key id and reports how many
// records went.
func (t *Txn) removeByID(table string, id string) (int, error) {
	key, err := t.idIndexer(table).FromArgs(id)
	if err != nil {
		return 0, err
	}
	n, err := t.txn.DeleteAll(table, "id", id)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		t.record(table, key, nil)
	}
	return n, nil
}

func (t *Txn) record(table string, key []byte, obj any) {
	if t.written == nil {
		t.written = make(map[tableKey]any)
	}
	t.written[tableKey{table, string(key)}] = obj
}

// lookup returns the record of table with primary key args (as for
// memdb's First on the "id" index) as this transaction sees it.
func (t *Txn) lookup(table string, args ...any) (any, error) {
	key, err := t.idIndexer(table).FromArgs(args...)
	if err != nil {
		return nil, err
	}
	if obj, ok := t.written[tableKey{table, string(key)}]; ok {
		return obj, nil
	}
	return t.base.First(table, "id", args...)
}

// Read gives read access inside a write transaction.
func (t *Txn) Read() *Snapshot { return &Snapshot{txn: t.txn, w: t} }

// PutCluster stores the cluster configuration singleton.
func (t *Txn) PutCluster(c *structs.ClusterConfig) error {
	cp := *c
	if old := t.Read().Cluster(nil); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableCluster, &cp)
}

// UpsertNode inserts or replaces a node.
func (t *Txn) UpsertNode(n *structs.Node) error {
	cp := *n
	if old := t.Read().Node(nil, n.ID); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableNodes, &cp)
}

// DeleteNode removes a node.
func (t *Txn) DeleteNode(id string) error {
	n, err := t.removeByID(TableNodes, id)
	if err != nil {
		return fmt.Errorf("delete node %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("node %s: %w", id, ErrNotFound)
	}
	return t.bump(TableNodes)
}

// PutIssuedCert records or updates an issued certificate.
func (t *Txn) PutIssuedCert(c *structs.IssuedCert) error {
	cp := *c
	if old := t.Read().IssuedCert(nil, c.Serial); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableIssuedCerts, &cp)
}

// PruneIssuedCerts drops records of certificates that expired before now;
// an expired certificate fails verification anyway, so its deny-list entry
// is no longer needed.
func (t *Txn) PruneIssuedCerts(now time.Time) error {
	var gone []*structs.IssuedCert
	for _, c := range t.Read().IssuedCerts(nil) {
		if c.NotAfter.Before(now) {
			gone = append(gone, c)
		}
	}
	for _, c := range gone {
		if err := t.remove(TableIssuedCerts, c); err != nil {
			return fmt.Errorf("prune issued cert %s: %w", c.Serial, err)
		}
	}
	if len(gone) > 0 {
		return t.bump(TableIssuedCerts)
	}
	return nil
}

// UpsertNamespace inserts or replaces a namespace.
func (t *Txn) UpsertNamespace(ns *structs.Namespace) error {
	cp := *ns
	if old := t.Read().Namespace(nil, ns.Name); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableNamespaces, &cp)
}

// DeleteNamespace removes a namespace.
func (t *Txn) DeleteNamespace(name string) error {
	n, err := t.removeByID(TableNamespaces, name)
	if err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("namespace %s: %w", name, ErrNotFound)
	}
	return t.bump(TableNamespaces)
}

// UpsertJoinToken inserts or replaces a join token.
func (t *Txn) UpsertJoinToken(tok *structs.JoinToken) error {
	cp := *tok
	if old := t.Read().JoinToken(nil, tok.ID); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableJoinTokens, &cp)
}

// UpsertACLToken inserts or replaces an API token.
func (t *Txn) UpsertACLToken(tok *structs.ACLToken) error {
	cp := *tok
	if old := t.Read().ACLToken(nil, tok.AccessorID); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableACLTokens, &cp)
}

// AddEvent appends an event stamped with this transaction's index and
// prunes the oldest ones beyond MaxEvents.
func (t *Txn) AddEvent(ev structs.Event) error {
	ev.Index = t.index
	ev.Seq = t.seq
	t.seq++
	if err := t.insert(TableEvents, &ev); err != nil {
		return err
	}
	n := t.Read().count(TableEvents)
	if n <= MaxEvents {
		return nil
	}
	it, err := t.txn.Get(TableEvents, "id")
	if err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	var old []any
	for o := it.Next(); o != nil && len(old) < n-MaxEvents; o = it.Next() {
		old = append(old, o)
	}
	for _, o := range old {
		if err := t.remove(TableEvents, o); err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
	}
	return nil
}

// Snapshot is a read-only view of the state at one index.
type Snapshot struct {
	txn *memdb.Txn
	// w is set for reads inside a write transaction; lookups by primary
	// key then go through it (see Txn.lookup).
	w *Txn
}

func (s *Snapshot) first(ws memdb.WatchSet, table, index string, args ...any) any {
	if s.w != nil && ws == nil && index == "id" {
		obj, err := s.w.lookup(table, args...)
		if err != nil {
			return nil
		}
		return obj
	}
	ch, obj, err := s.txn.FirstWatch(table, index, args...)
	if err != nil {
		return nil // only a schema mismatch errors; tests cover every query
	}
	ws.Add(ch)
	return obj
}

func list[T any](s *Snapshot, ws memdb.WatchSet, table, index string, args ...any) []*T {
	it, err := s.txn.Get(table, index, args...)
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []*T
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*T))
	}
	return out
}

func (s *Snapshot) count(table string) int {
	it, err := s.txn.Get(table, "id")
	if err != nil {
		return 0
	}
	n := 0
	for o := it.Next(); o != nil; o = it.Next() {
		n++
	}
	return n
}

// Index returns the Raft index that last changed table.
func (s *Snapshot) Index(table string) uint64 {
	o, err := s.txn.First(TableIndex, "id", table)
	if err != nil || o == nil {
		return 0
	}
	return o.(*IndexEntry).Value
}

// LatestIndex is the highest index of any table.
func (s *Snapshot) LatestIndex() uint64 {
	var max uint64
	for _, e := range list[IndexEntry](s, nil, TableIndex, "id") {
		if e.Value > max {
			max = e.Value
		}
	}
	return max
}

// Cluster returns the cluster configuration, or nil before bootstrap.
func (s *Snapshot) Cluster(ws memdb.WatchSet) *structs.ClusterConfig {
	o := s.first(ws, TableCluster, "id", true)
	if o == nil {
		return nil
	}
	return o.(*structs.ClusterConfig)
}

// Node returns one node or nil.
func (s *Snapshot) Node(ws memdb.WatchSet, id string) *structs.Node {
	o := s.first(ws, TableNodes, "id", id)
	if o == nil {
		return nil
	}
	return o.(*structs.Node)
}

// Nodes lists nodes by ID.
func (s *Snapshot) Nodes(ws memdb.WatchSet) []*structs.Node {
	return list[structs.Node](s, ws, TableNodes, "id")
}

// IssuedCert returns a certificate record by serial, or nil.
func (s *Snapshot) IssuedCert(ws memdb.WatchSet, serial string) *structs.IssuedCert {
	o := s.first(ws, TableIssuedCerts, "id", serial)
	if o == nil {
		return nil
	}
	return o.(*structs.IssuedCert)
}

// IssuedCerts lists every recorded certificate.
func (s *Snapshot) IssuedCerts(ws memdb.WatchSet) []*structs.IssuedCert {
	return list[structs.IssuedCert](s, ws, TableIssuedCerts, "id")
}

// IssuedCertsByNode lists the certificates issued to a node.
func (s *Snapshot) IssuedCertsByNode(ws memdb.WatchSet, nodeID string) []*structs.IssuedCert {
	return list[structs.IssuedCert](s, ws, TableIssuedCerts, "node", nodeID)
}

// Namespace returns one namespace or nil.
func (s *Snapshot) Namespace(ws memdb.WatchSet, name string) *structs.Namespace {
	o := s.first(ws, TableNamespaces, "id", name)
	if o == nil {
		return nil
	}
	return o.(*structs.Namespace)
}

// Namespaces lists namespaces by name.
func (s *Snapshot) Namespaces(ws memdb.WatchSet) []*structs.Namespace {
	return list[structs.Namespace](s, ws, TableNamespaces, "id")
}

// JoinToken returns one join token or nil.
func (s *Snapshot) JoinToken(ws memdb.WatchSet, id string) *structs.JoinToken {
	o := s.first(ws, TableJoinTokens, "id", id)
	if o == nil {
		return nil
	}
	return o.(*structs.JoinToken)
}

// JoinTokens lists join tokens, oldest first.
func (s *Snapshot) JoinTokens(ws memdb.WatchSet) []*structs.JoinToken {
	out := list[structs.JoinToken](s, ws, TableJoinTokens, "id")
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// ACLToken returns one API token by accessor or nil.
func (s *Snapshot) ACLToken(ws memdb.WatchSet, accessor string) *structs.ACLToken {
	o := s.first(ws, TableACLTokens, "id", accessor)
	if o == nil {
		return nil
	}
	return o.(*structs.ACLToken)
}

// ACLTokenBySecretHash finds an API token by the hex SHA-256 of its secret.
func (s *Snapshot) ACLTokenBySecretHash(ws memdb.WatchSet, hash string) *structs.ACLToken {
	o := s.first(ws, TableACLTokens, "secret", hash)
	if o == nil {
		return nil
	}
	return o.(*structs.ACLToken)
}

// Events lists events oldest first.
func (s *Snapshot) Events(ws memdb.WatchSet) []*structs.Event {
	return list[structs.Event](s, ws, TableEvents, "id")
}

// Counts returns the number of records in every table.
func (s *Snapshot) Counts() map[string]int {
	out := make(map[string]int, len(Tables))
	for _, t := range Tables {
		out[t.Name] = s.count(t.Name)
	}
	return out
}

// Each calls fn for every record of table, for snapshots.
func (s *Snapshot) Each(table string, fn func(obj any) error) error {
	it, err := s.txn.Get(table, "id")
	if err != nil {
		return fmt.Errorf("read table %s: %w", table, err)
	}
	for o := it.Next(); o != nil; o = it.Next() {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// Restore loads records into a fresh store, for snapshot restore.
type Restore struct{ txn *memdb.Txn }

// Restore opens a bulk-load transaction.
func (s *Store) Restore() *Restore { return &Restore{txn: s.db.Txn(true)} }

// Insert adds one decoded record to table.
func (r *Restore) Insert(table string, obj any) error {
	if err := r.txn.Insert(table, obj); err != nil {
		return fmt.Errorf("restore %s: %w", table, err)
	}
	return nil
}

// Commit derives the tables snapshots leave out and finishes the restore.
// On error nothing is restored.
func (r *Restore) Commit() error {
	if err := rebuildUsage(r.txn); err != nil {
		r.txn.Abort()
		return err
	}
	r.txn.Commit()
	return nil
}

// Abort discards the restore.
func (r *Restore) Abort() { r.txn.Abort() }
