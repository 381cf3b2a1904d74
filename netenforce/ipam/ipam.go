// Package ipam hands out the addresses of one worker's allocation subnet
// and remembers them on the node's disk, so an agent restart gives every
// running allocation the address it had.
//
// The network address, the gateway (the first host address, which the
// node itself holds) and the broadcast address are never handed out. New
// allocations get the lowest free address after the last one handed out,
// wrapping around, so an address just released is not reused at once and
// a late packet for a gone allocation does not reach its successor.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Store is the allocation → address table of one subnet.
type Store struct {
	path   string
	subnet netip.Prefix

	mu     sync.Mutex
	byID   map[string]netip.Addr
	used   map[netip.Addr]string
	cursor netip.Addr // the last address handed out
}

// file is the on-disk form.
type file struct {
	Subnet string            `json:"subnet"`
	Cursor string            `json:"cursor,omitempty"`
	Allocs map[string]string `json:"allocs"`
}

// ErrFull is returned when every address of the subnet is taken.
var ErrFull = errors.New("subnet full")

// Open loads the store at path for subnet (an IPv4 prefix of at most /30),
// creating it if missing. A store written for another subnet (the node got
// a new lease) is started afresh; the allocations it held are returned so
// the caller can tear their networks down.
func Open(path string, subnet netip.Prefix) (*Store, map[string]netip.Addr, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() || subnet.Bits() > 30 || subnet.Masked() != subnet {
		return nil, nil, fmt.Errorf("ipam: subnet %s must be an IPv4 network of /30 or larger", subnet)
	}
	s := &Store{path: path, subnet: subnet, byID: map[string]netip.Addr{}, used: map[netip.Addr]string{}, cursor: gateway(subnet)}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil, s.save()
	case err != nil:
		return nil, nil, fmt.Errorf("ipam: read %s: %w", path, err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, nil, fmt.Errorf("ipam: %s is not a valid address store (%v); move it away to start afresh, after removing the allocation networks it describes", path, err)
	}
	if f.Subnet != subnet.String() {
		dropped := map[string]netip.Addr{}
		for id, a := range f.Allocs {
			if addr, err := netip.ParseAddr(a); err == nil {
				dropped[id] = addr
			}
		}
		return s, dropped, s.save()
	}
	for id, a := range f.Allocs {
		addr, err := netip.ParseAddr(a)
		if err != nil || !s.assignable(addr) || s.used[addr] != "" {
			return nil, nil, fmt.Errorf("ipam: %s gives allocation %s the address %q, which is not a free host address of %s; move the file away to start afresh", path, id, a, subnet)
		}
		s.byID[id], s.used[addr] = addr, id
	}
	if c, err := netip.ParseAddr(f.Cursor); err == nil && subnet.Contains(c) {
		s.cursor = c
	}
	return s, nil, nil
}

func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// assignable reports whether a is a host address of the subnet other than
// the gateway.
func (s *Store) assignable(a netip.Addr) bool {
	return s.subnet.Contains(a) && a != s.subnet.Masked().Addr() && a != gateway(s.subnet) && a != broadcast(s.subnet)
}

// Gateway is the node's own address in the subnet, the allocations'
// default route.
func (s *Store) Gateway() netip.Addr { return gateway(s.subnet) }

// Subnet is the store's subnet.
func (s *Store) Subnet() netip.Prefix { return s.subnet }

// Capacity is how many allocations the subnet holds.
func (s *Store) Capacity() int { return 1<<(32-s.subnet.Bits()) - 3 }

// Allocate returns allocID's address, assigning one if it has none.
func (s *Store) Allocate(allocID string) (netip.Addr, error) {
	if allocID == "" {
		return netip.Addr{}, errors.New("ipam: empty allocation ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.byID[allocID]; ok {
		return a, nil
	}
	a := s.cursor
	for range s.Capacity() + 3 {
		a = a.Next()
		if !s.subnet.Contains(a) {
			a = s.subnet.Masked().Addr()
		}
		if s.assignable(a) && s.used[a] == "" {
			s.byID[allocID], s.used[a] = a, allocID
			prev := s.cursor
			s.cursor = a
			if err := s.save(); err != nil {
				delete(s.byID, allocID)
				delete(s.used, a)
				s.cursor = prev
				return netip.Addr{}, err
			}
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("ipam: %w: all %d addresses of %s are taken", ErrFull, s.Capacity(), s.subnet)
}

// Lookup returns allocID's address, if it has one.
func (s *Store) Lookup(allocID string) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byID[allocID]
	return a, ok
}

// Release frees allocID's address; releasing an unknown allocation is not
// an error.
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

// save writes the table atomically (temporary file, fsync, rename). The
// caller holds mu, or has the only reference.
func (s *Store) save() error {
	f := file{Subnet: s.subnet.String(), Cursor: s.cursor.String(), Allocs: map[string]string{}}
	ids := make([]string, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f.Allocs[id] = s.byID[id].String()
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".ipam-*")
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}
