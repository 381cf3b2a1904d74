package nft

import (
	"errors"
	"fmt"
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
	counters map[string]countSource // of the table last applied
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

// Apply replaces table inet hive with r, atomically unless the batch is
// larger than the Applier's limit (see the package documentation).
func (a *Applier) Apply(r *policy.Ruleset) error {
	if r == nil {
		return errors.New("nft apply: nil ruleset")
	}
	p := plan(r, a.guard)
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
	a.mu.Lock()
	a.counters = p.counters
	a.mu.Unlock()
	return nil
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
