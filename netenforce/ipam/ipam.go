// Package ipam hands out the addresses of one worker's allocation subnet
// and remembers them on the node's disk, so an agent restart gives every
// running allocation the address it had.
//
// The network address, the gateway (the first host address, which the
// node itself holds) and the broadcast address are never handed out.
//
// New allocations get the lowest free address after the last one handed
// out, wrapping around at the end of the subnet (round-robin), not the
// lowest free address overall: an address just released is then not
// reused at once, so a late packet, a stale DNS answer or a stale
// conntrack entry for a gone allocation does not reach its successor. The
// position ("cursor") is stored with the table, so this holds across
// restarts too.
//
// The table is a JSON file, mode 0600 in a 0700 directory, replaced
// atomically on every change (temporary file, fsync, rename, fsync of the
// directory), so a crash leaves either the old table or the new one.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
)

// ErrFull is returned (wrapped) by Allocate when every address of the
// subnet is taken.
var ErrFull = errors.New("subnet full")

// Store is the allocation → address table of one subnet. It is safe for
// concurrent use.
type Store struct {
	path   string
	subnet netip.Prefix

	mu     sync.Mutex
	byID   map[string]netip.Addr
	used   map[netip.Addr]string
	cursor netip.Addr // the last address handed out
}

// file is the on-disk form. Addresses are strings so the file stays
// readable and editable by an operator.
type file struct {
	Subnet string            `json:"subnet"`
	Cursor string            `json:"cursor,omitempty"`
	Allocs map[string]string `json:"allocs"`
}

// Open loads the store at path for subnet (an IPv4 network of /30 or
// larger), creating the file and its directory if missing.
//
// A file written for another subnet (the node got a new lease) is not an
// error: the store starts empty and Open returns the allocations the file
// held, so the caller can tear their networks down (and log that it does).
// The old file is only replaced by the first Allocate or Release, so a
// crash before the caller has cleaned up returns the same allocations at
// the next Open.
//
// A file that cannot be read as a table for a subnet (bad JSON, no or a
// malformed subnet, an address outside the subnet or reserved, one address
// twice) is an error and is left untouched: the allocations it describes
// may still have networks that only the operator can account for.
func Open(path string, subnet netip.Prefix) (*Store, map[string]netip.Addr, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() || subnet.Bits() > 30 || subnet.Masked() != subnet {
		return nil, nil, fmt.Errorf("ipam: subnet %s must be an IPv4 network address with a prefix of /30 or shorter", subnet)
	}
	s := &Store{path: path, subnet: subnet, byID: map[string]netip.Addr{}, used: map[netip.Addr]string{}, cursor: gateway(subnet)}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil, s.save()
	case err != nil:
		return nil, nil, fmt.Errorf("ipam: read %s: %w", path, err)
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("ipam: %s is not a valid address store: %s; it was left as it is: remove the allocation networks it describes, then move it away to start afresh", path, fmt.Sprintf(format, args...))
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, nil, corrupt("%v", err)
	}
	stored, err := netip.ParsePrefix(f.Subnet)
	if err != nil || !stored.Addr().Is4() || stored.Masked() != stored {
		return nil, nil, corrupt("subnet %q is not an IPv4 network", f.Subnet)
	}
	if stored != subnet {
		// Addresses of the old subnet are not checked: the caller needs
		// only the IDs to find the networks.
		dropped := make(map[string]netip.Addr, len(f.Allocs))
		for id, a := range f.Allocs {
			addr, _ := netip.ParseAddr(a)
			dropped[id] = addr
		}
		return s, dropped, nil
	}
	for id, a := range f.Allocs {
		addr, err := netip.ParseAddr(a)
		switch {
		case id == "":
			return nil, nil, corrupt("an allocation with an empty ID")
		case err != nil || !s.assignable(addr):
			return nil, nil, corrupt("allocation %s has %q, which is not an assignable address of %s", id, a, subnet)
		case s.used[addr] != "":
			return nil, nil, corrupt("allocations %s and %s both have %s", s.used[addr], id, addr)
		}
		s.byID[id], s.used[addr] = addr, id
	}
	if c, err := netip.ParseAddr(f.Cursor); err == nil && subnet.Contains(c) {
		s.cursor = c
	}
	return s, nil, nil
}

func gateway(p netip.Prefix) netip.Addr { return p.Addr().Next() }

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// assignable reports whether a is a host address of the subnet other than
// the gateway.
func (s *Store) assignable(a netip.Addr) bool {
	return s.subnet.Contains(a) && a != s.subnet.Addr() && a != gateway(s.subnet) && a != broadcast(s.subnet)
}

// Gateway is the node's own address in the subnet (the first host
// address), the allocations' default route.
func (s *Store) Gateway() netip.Addr { return gateway(s.subnet) }

// Subnet is the store's subnet.
func (s *Store) Subnet() netip.Prefix { return s.subnet }

// Capacity is how many allocations the subnet holds: every address but
// the network, gateway and broadcast addresses.
func (s *Store) Capacity() int { return 1<<(32-s.subnet.Bits()) - 3 }

// Allocate returns allocID's address, assigning one if it has none (see
// the package comment for which). The table is on disk before Allocate
// returns a new address.
func (s *Store) Allocate(allocID string) (netip.Addr, error) {
	if allocID == "" {
		return netip.Addr{}, errors.New("ipam: empty allocation ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.byID[allocID]; ok {
		return a, nil
	}
	if len(s.byID) >= s.Capacity() {
		return netip.Addr{}, fmt.Errorf("ipam: %w: %s has %d addresses for allocations and all of them are taken", ErrFull, s.subnet, s.Capacity())
	}
	a := s.cursor
	for {
		if a = a.Next(); !s.subnet.Contains(a) {
			a = s.subnet.Addr()
		}
		if s.assignable(a) && s.used[a] == "" {
			break
		}
	}
	prev := s.cursor
	s.byID[allocID], s.used[a], s.cursor = a, allocID, a
	if err := s.save(); err != nil {
		delete(s.byID, allocID)
		delete(s.used, a)
		s.cursor = prev
		return netip.Addr{}, err
	}
	return a, nil
}

// Lookup returns allocID's address, if it has one.
func (s *Store) Lookup(allocID string) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byID[allocID]
	return a, ok
}

// Release frees allocID's address; releasing an allocation without one is
// not an error.
func (s *Store) Release(allocID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byID[allocID]
	if !ok {
		return nil
	}
	delete(s.byID, allocID)
	delete(s.used, a)
	if err := s.save(); err != nil {
		s.byID[allocID], s.used[a] = a, allocID
		return err
	}
	return nil
}

// All returns a copy of the table.
func (s *Store) All() map[string]netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]netip.Addr, len(s.byID))
	for k, v := range s.byID {
		out[k] = v
	}
	return out
}

// save replaces the file with the table. The caller holds mu, or has the
// only reference.
func (s *Store) save() error {
	f := file{Subnet: s.subnet.String(), Cursor: s.cursor.String(), Allocs: make(map[string]string, len(s.byID))}
	for id, a := range s.byID {
		f.Allocs[id] = a.String() // encoding/json sorts the keys
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("ipam: encode: %w", err)
	}
	if err := writeAtomic(s.path, append(b, '\n')); err != nil {
		return fmt.Errorf("ipam: save %s: %w", s.path, err)
	}
	return nil
}

// writeAtomic replaces path with b so that a crash at any point leaves
// either the old content or the new one, never a mix or an empty file.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	// CreateTemp makes 0600 already; Chmod says so and ignores the umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
