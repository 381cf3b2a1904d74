package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func open(t *testing.T, path, subnet string) *Store {
	t.Helper()
	s, dropped, err := Open(path, netip.MustParsePrefix(subnet))
	if err != nil {
		t.Fatal(err)
	}
	if dropped != nil {
		t.Fatalf("Open(%s, %s) dropped %v", path, subnet, dropped)
	}
	return s
}

func allocate(t *testing.T, s *Store, id string) string {
	t.Helper()
	a, err := s.Allocate(id)
	if err != nil {
		t.Fatalf("Allocate(%s): %v", id, err)
	}
	return a.String()
}

func TestReservedAddressesAndOrder(t *testing.T) {
	// /29: .0 network, .1 gateway, .7 broadcast; .2-.6 for allocations.
	s := open(t, filepath.Join(t.TempDir(), "ipam.json"), "198.19.1.0/29")
	if s.Capacity() != 5 || s.Gateway().String() != "198.19.1.1" || s.Subnet().String() != "198.19.1.0/29" {
		t.Fatalf("capacity %d, gateway %s, subnet %s", s.Capacity(), s.Gateway(), s.Subnet())
	}
	var got []string
	for i := range 5 {
		got = append(got, allocate(t, s, fmt.Sprint("a", i)))
	}
	if fmt.Sprint(got) != "[198.19.1.2 198.19.1.3 198.19.1.4 198.19.1.5 198.19.1.6]" {
		t.Fatalf("handed out %v", got)
	}
	if a := allocate(t, s, "a2"); a != "198.19.1.4" {
		t.Fatalf("a2 again got %s, want its own 198.19.1.4", a)
	}
	if a, ok := s.Lookup("a3"); !ok || a.String() != "198.19.1.5" {
		t.Fatalf("Lookup(a3) = %v %v", a, ok)
	}
	if _, ok := s.Lookup("nope"); ok {
		t.Fatal("Lookup of an unknown allocation succeeded")
	}
	if _, err := s.Allocate(""); err == nil {
		t.Fatal("empty allocation ID accepted")
	}
}

func TestRoundRobin(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ipam.json"), "198.19.1.0/29")
	for _, id := range []string{"a", "b", "c"} { // .2 .3 .4
		allocate(t, s, id)
	}
	if err := s.Release("a"); err != nil {
		t.Fatal(err)
	}
	// .2 was just freed: the next one is after the last handed out.
	if a := allocate(t, s, "d"); a != "198.19.1.5" {
		t.Fatalf("d got %s, want 198.19.1.5", a)
	}
	if a := allocate(t, s, "e"); a != "198.19.1.6" {
		t.Fatalf("e got %s, want 198.19.1.6", a)
	}
	// The end of the subnet: wrap around, skipping network and gateway.
	if a := allocate(t, s, "f"); a != "198.19.1.2" {
		t.Fatalf("f got %s, want 198.19.1.2 (wrapped)", a)
	}
}

func TestFull(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ipam.json"), "198.19.1.0/30")
	if s.Capacity() != 1 || allocate(t, s, "only") != "198.19.1.2" {
		t.Fatalf("a /30 holds one allocation at .2; capacity %d", s.Capacity())
	}
	_, err := s.Allocate("second")
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "198.19.1.0/30 has 1 addresses") {
		t.Fatalf("second allocation in a /30: %v; want ErrFull naming the subnet and its size", err)
	}
	if _, ok := s.Lookup("second"); ok {
		t.Fatal("the refused allocation has an address")
	}
	if err := s.Release("only"); err != nil {
		t.Fatal(err)
	}
	if a := allocate(t, s, "second"); a != "198.19.1.2" {
		t.Fatalf("after a release: %s", a)
	}

	s24 := open(t, filepath.Join(t.TempDir(), "ipam.json"), "198.19.2.0/24")
	for i := range 253 {
		allocate(t, s24, fmt.Sprint(i))
	}
	if _, err := s24.Allocate("x"); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "253") {
		t.Fatalf("254th allocation in a /24: %v", err)
	}
}

func TestRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "ipam.json")
	s := open(t, path, "198.19.1.0/29")
	for _, id := range []string{"a", "b", "c"} {
		allocate(t, s, id)
	}
	if err := s.Release("b"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v %v; want mode 0600", fi, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store directory: %v %v; want mode 0700", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("the directory holds %v; want only ipam.json (no temporary files left)", ents)
	}

	s2 := open(t, path, "198.19.1.0/29")
	if fmt.Sprint(s2.All()) != fmt.Sprint(s.All()) {
		t.Fatalf("after reopening: %v, before: %v", s2.All(), s.All())
	}
	if a := allocate(t, s2, "a"); a != "198.19.1.2" {
		t.Fatalf("a after restart: %s", a)
	}
	// The cursor survived: the next is after .4 (c), not the freed .3.
	if a := allocate(t, s2, "d"); a != "198.19.1.5" {
		t.Fatalf("d after restart got %s, want 198.19.1.5", a)
	}
}

func TestNewLease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	old := open(t, path, "198.19.1.0/24")
	allocate(t, old, "a")
	allocate(t, old, "b")

	for range 2 { // the old table stays on disk until the first change
		s, dropped, err := Open(path, netip.MustParsePrefix("198.19.2.0/24"))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(dropped) != "map[a:198.19.1.2 b:198.19.1.3]" || len(s.All()) != 0 {
			t.Fatalf("new subnet: dropped %v, kept %v", dropped, s.All())
		}
	}
	s, _, err := Open(path, netip.MustParsePrefix("198.19.2.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if a := allocate(t, s, "c"); a != "198.19.2.2" {
		t.Fatalf("first address of the new subnet: %s", a)
	}
	if s := open(t, path, "198.19.2.0/24"); len(s.All()) != 1 {
		t.Fatalf("after the first change: %v", s.All())
	}
}

func TestBadSubnet(t *testing.T) {
	dir := t.TempDir()
	for _, sn := range []string{"fd00::/64", "198.19.0.0/31", "198.19.0.0/32", "198.19.0.1/24"} {
		if _, _, err := Open(filepath.Join(dir, "ipam.json"), netip.MustParsePrefix(sn)); err == nil {
			t.Errorf("subnet %s accepted", sn)
		}
	}
	if _, _, err := Open(filepath.Join(dir, "ipam.json"), netip.Prefix{}); err == nil {
		t.Error("the zero prefix accepted")
	}
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	sn := netip.MustParsePrefix("198.19.1.0/24")
	for name, body := range map[string]string{
		"empty":         "",
		"truncated":     `{"subnet":"198.19.1.0/24","allocs":{"x":"198.`,
		"no subnet":     `{"allocs":{"x":"198.19.1.5"}}`,
		"bad subnet":    `{"subnet":"198.19.1.0/33","allocs":{}}`,
		"host bits":     `{"subnet":"198.19.1.9/24","allocs":{}}`,
		"gateway":       `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.1.1"}}`,
		"network":       `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.1.0"}}`,
		"broadcast":     `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.1.255"}}`,
		"outside":       `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.9.9"}}`,
		"not an addr":   `{"subnet":"198.19.1.0/24","allocs":{"x":"banana"}}`,
		"duplicate":     `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.1.5","y":"198.19.1.5"}}`,
		"empty ID":      `{"subnet":"198.19.1.0/24","allocs":{"":"198.19.1.5"}}`,
		"wrong shape":   `["198.19.1.0/24"]`,
		"wrong type":    `{"subnet":"198.19.1.0/24","allocs":{"x":5}}`,
		"not json":      "subnet = 198.19.1.0/24",
		"trailing data": `{"subnet":"198.19.1.0/24","allocs":{}}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := Open(p, sn)
		if err == nil {
			t.Errorf("%s: opened", name)
			continue
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a valid address store") {
			t.Errorf("%s: error %q does not say which file is bad", name, err)
		}
		if b, _ := os.ReadFile(p); string(b) != body {
			t.Errorf("%s: the bad file was overwritten", name)
		}
	}
}

// A failed write leaves the table as it was, in memory and on disk.
func TestSaveFailureRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	s := open(t, path, "198.19.1.0/24")
	allocate(t, s, "a")
	// A non-empty directory in the file's place makes the rename fail,
	// even for root.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Allocate("b"); err == nil {
		t.Fatal("Allocate succeeded without saving")
	}
	if err := s.Release("a"); err == nil {
		t.Fatal("Release succeeded without saving")
	}
	if fmt.Sprint(s.All()) != "map[a:198.19.1.2]" {
		t.Fatalf("after failed saves: %v", s.All())
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if a := allocate(t, s, "b"); a != "198.19.1.3" {
		t.Fatalf("b after the failure: %s (the cursor moved on a failed save?)", a)
	}
}

func TestConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	s := open(t, path, "198.19.3.0/24")
	const n = 200 // more than the 253 addresses minus what stays allocated
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint("c", i)
			a, err := s.Allocate(id)
			if err != nil {
				errs <- err
				return
			}
			if b, err := s.Allocate(id); err != nil || b != a {
				errs <- fmt.Errorf("%s: %s then %s, %v", id, a, b, err)
			}
			if got, ok := s.Lookup(id); !ok || got != a {
				errs <- fmt.Errorf("%s: Lookup %v %v, want %s", id, got, ok, a)
			}
			_ = s.All()
			if i%2 == 0 {
				if err := s.Release(id); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all := s.All()
	if len(all) != n/2 {
		t.Fatalf("%d allocations left, want %d", len(all), n/2)
	}
	seen := map[netip.Addr]string{}
	for id, a := range all {
		if other, dup := seen[a]; dup {
			t.Fatalf("%s and %s both have %s", id, other, a)
		}
		seen[a] = id
	}
	if re := open(t, path, "198.19.3.0/24"); fmt.Sprint(re.All()) != fmt.Sprint(all) {
		t.Fatal("the file differs from the table in memory")
	}
}
