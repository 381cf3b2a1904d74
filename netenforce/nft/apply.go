package nft

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/policy"
)

// TableName is the table Hive owns, in the inet family.
const TableName = "hive"

// ElementsPerMessage bounds the set elements of one netlink message: the
// element list is one attribute, whose length field is 16 bits, and the
// largest element (an IPv6 CIDR-with-ports range) takes about 110 bytes.
const ElementsPerMessage = 400

// DefaultMaxBatchBytes is the batch size above which a sync is split (see
// the package documentation).
const DefaultMaxBatchBytes = 64 << 20

// Applier writes rulesets into table inet hive of one network namespace.
type Applier struct {
	netnsFd       int // -1: the caller's namespace
	maxBatchBytes int
	guard         *Guard

	mu       sync.Mutex
	node     netip.Addr
	ports    []PortForward
	counters map[string]countSource // of the table last applied
	banked   []Counter              // counts of the tables replaced so far
	// last is the plan in the kernel and lastKey its structure, for
	// updating only set elements when the structure is unchanged.
	last    *planned
	lastKey string
	// Full and incremental syncs done, for tests and status.
	FullSyncs, ElementSyncs int
}

// Option configures an Applier.
type Option func(*Applier)

// WithNetNS makes the Applier work in the network namespace fd refers to.
// The caller keeps fd open as long as the Applier is used.
func WithNetNS(fd int) Option { return func(a *Applier) { a.netnsFd = fd } }

// WithMaxBatchBytes sets the size above which a sync is split into several
// batches; tests use it to exercise the split path.
func WithMaxBatchBytes(n int) Option { return func(a *Applier) { a.maxBatchBytes = n } }

// SetGuard makes every later Apply write g's anti-spoofing rules ahead of
// the policy (nil: none). The worker agent sets it as its allocations and
// its lease change.
func (a *Applier) SetGuard(g *Guard) error {
	if g != nil {
		if err := g.validate(); err != nil {
			return err
		}
	}
	a.guard = g
	return nil
}

// New returns an Applier for the caller's network namespace unless
// WithNetNS says otherwise.
func New(opts ...Option) *Applier {
	a := &Applier{netnsFd: -1, maxBatchBytes: DefaultMaxBatchBytes}
	for _, o := range opts {
		o(a)
	}
	return a
}

// conn opens a netlink connection sized for a batch of batchBytes.
func (a *Applier) conn(batchBytes int) (*nftables.Conn, error) {
	return a.connFor(batchBytes, 0)
}

// connFor is conn for a batch of messages netlink messages, each of which
// the kernel acknowledges: an acknowledgement is small, but the socket
// buffer is charged about a kilobyte for each, and they arrive faster
// than the library reads them.
func (a *Applier) connFor(batchBytes, messages int) (*nftables.Conn, error) {
	buf := max(batchBytes+(1<<20), 4<<20)
	rcv := max(4<<20, messages*1024)
	opts := []nftables.ConnOption{nftables.WithSockOptions(func(c *netlink.Conn) error {
		// Without CAP_ACK every acknowledgement echoes its request, and
		// the acks of a large batch overflow the receive buffer.
		if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
			return fmt.Errorf("set NETLINK_CAP_ACK: %w", err)
		}
		return forceBuffers(c, buf, rcv)
	})}
	if a.netnsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(a.netnsFd))
	}
	return nftables.New(opts...)
}

// forceBuffers raises the socket buffers past net.core.[rw]mem_max, which
// needs CAP_NET_ADMIN, the capability applying a ruleset needs anyway.
func forceBuffers(c *netlink.Conn, n, rcv int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n); e != nil {
			serr = fmt.Errorf("set SO_SNDBUFFORCE: %w", e)
			return
		}
		if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv); e != nil {
			serr = fmt.Errorf("set SO_RCVBUFFORCE: %w", e)
		}
	})
	return errors.Join(err, serr)
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// Apply makes table inet hive hold r. When only set elements differ from
// the last Apply (an endpoint came or went, a quarantine, a veth), it
// sends just those additions and deletions, in one atomic batch, keeping
// the counters; otherwise it replaces the whole table, atomically unless
// the batch is larger than the Applier's limit (see the package
// documentation). A failed element update falls back to a full sync.
func (a *Applier) Apply(r *policy.Ruleset) error {
	if r == nil {
		return errors.New("nft apply: nil ruleset")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := plan(r, a.guard)
	p.node, p.ports = a.node, a.ports
	key := p.structureKey()
	if a.last != nil && key == a.lastKey {
		ok, err := a.applyElements(a.last, p)
		if ok && err == nil {
			a.last, a.counters = p, p.counters
			a.ElementSyncs++
			return nil
		}
	}
	if a.last != nil {
		// Keep what the table counted before it goes; a table someone
		// else removed has nothing to give.
		_ = a.bank()
	}
	if err := a.applyFull(p); err != nil {
		a.last, a.lastKey = nil, ""
		return err
	}
	a.last, a.lastKey, a.counters = p, key, p.counters
	a.FullSyncs++
	return nil
}

func (a *Applier) applyFull(p *planned) error {
	batches := p.split(a.maxBatchBytes)
	for i, b := range batches {
		msgs := len(b.chunks)
		if i == 0 {
			msgs += p.structureMessages()
		}
		c, err := a.connFor(b.bytes, msgs)
		if err != nil {
			return fmt.Errorf("nft apply: open netlink: %w", err)
		}
		if i == 0 {
			t := table()
			// Add (a no-op when it exists), delete, add: the batch works
			// whether or not the table exists and leaves no old object.
			c.AddTable(t)
			c.DelTable(t)
			if err := p.writeStructure(c); err != nil {
				return fmt.Errorf("nft apply: %w", err)
			}
		}
		for _, ch := range b.chunks {
			if err := c.SetAddElements(ch.set, ch.elems); err != nil {
				return fmt.Errorf("nft apply: set %s: %w", ch.set.Name, err)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nft apply: batch %d of %d: %w", i+1, len(batches), err)
		}
	}
	return nil
}

// applyElements sends the element differences between two plans of the
// same structure in one batch. It declines (false) when an interval set
// changed, whose ranges the kernel may have merged or split, or when the
// change is large enough that a full sync is as cheap.
func (a *Applier) applyElements(old, p *planned) (bool, error) {
	type change struct {
		set       *nftables.Set
		add, dels []nftables.SetElement
	}
	var changes []change
	total := 0
	for i, s := range p.sets {
		o := old.sets[i]
		add, dels := diffElements(o.elems, s.elems)
		if len(add) == 0 && len(dels) == 0 {
			continue
		}
		if s.set.Interval {
			return false, nil
		}
		changes = append(changes, change{s.set, add, dels})
		total += len(add) + len(dels)
	}
	if total > ElementsPerMessage*8 {
		return false, nil
	}
	c, err := a.connFor(total*160+(64<<10), 2*len(changes)+8)
	if err != nil {
		return true, fmt.Errorf("nft apply: open netlink: %w", err)
	}
	for _, ch := range changes {
		// Deletions first: a key that changes value (a verdict map
		// element moving to another group) is deleted and added again.
		for start := 0; start < len(ch.dels); start += ElementsPerMessage {
			if err := c.SetDeleteElements(ch.set, ch.dels[start:min(start+ElementsPerMessage, len(ch.dels))]); err != nil {
				return true, err
			}
		}
		for start := 0; start < len(ch.add); start += ElementsPerMessage {
			if err := c.SetAddElements(ch.set, ch.add[start:min(start+ElementsPerMessage, len(ch.add))]); err != nil {
				return true, err
			}
		}
	}
	if err := c.Flush(); err != nil {
		return true, fmt.Errorf("nft apply: element update: %w", err)
	}
	return true, nil
}

func elemKey(e *nftables.SetElement) string {
	k := hex.EncodeToString(e.Key) + "-" + hex.EncodeToString(e.KeyEnd) + "=" + hex.EncodeToString(e.Val)
	if e.VerdictData != nil {
		k += fmt.Sprintf("/%d:%s", e.VerdictData.Kind, e.VerdictData.Chain)
	}
	if e.IntervalEnd {
		k += "/end"
	}
	return k
}

// diffElements returns what to add to old to get new and what to delete.
func diffElements(old, new []nftables.SetElement) (add, dels []nftables.SetElement) {
	have := make(map[string]bool, len(old))
	for i := range old {
		have[elemKey(&old[i])] = true
	}
	want := make(map[string]bool, len(new))
	for i := range new {
		k := elemKey(&new[i])
		want[k] = true
		if !have[k] {
			add = append(add, new[i])
		}
	}
	for i := range old {
		if !want[elemKey(&old[i])] {
			dels = append(dels, old[i])
		}
	}
	return add, dels
}

// Delete removes table inet hive; a missing table is not an error.
func (a *Applier) Delete() error {
	c, err := a.conn(0)
	if err != nil {
		return fmt.Errorf("nft delete: open netlink: %w", err)
	}
	t := table()
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("nft delete: %w", err)
	}
	return nil
}
