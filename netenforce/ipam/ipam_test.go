package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestAllocatePersistsAndSkipsReserved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "ipam.json")
	sn := netip.MustParsePrefix("198.19.1.0/29") // .1 gateway, .7 broadcast: 5 usable
	s, dropped, err := Open(path, sn)
	if err != nil || dropped != nil {
		t.Fatal(err, dropped)
	}
	if s.Capacity() != 5 || s.Gateway().String() != "198.19.1.1" {
		t.Fatalf("capacity %d gateway %s", s.Capacity(), s.Gateway())
	}
	var got []string
	for i := range 5 {
		a, err := s.Allocate(fmt.Sprint("a", i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if fmt.Sprint(got) != "[198.19.1.2 198.19.1.3 198.19.1.4 198.19.1.5 198.19.1.6]" {
		t.Fatalf("handed out %v", got)
	}
	if _, err := s.Allocate("a5"); !errors.Is(err, ErrFull) {
		t.Fatalf("sixth allocation: %v, want ErrFull", err)
	}
	if a, _ := s.Allocate("a2"); a.String() != "198.19.1.4" {
		t.Fatalf("a2 again got %s", a)
	}
	if err := s.Release("a1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("nope"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v %v", fi, err)
	}
	// A restart sees the same table.
	s2, _, err := Open(path, sn)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := s2.Lookup("a4"); !ok || a.String() != "198.19.1.6" {
		t.Fatalf("after reopen a4 = %v %v", a, ok)
	}
	if _, ok := s2.Lookup("a1"); ok {
		t.Fatal("released a1 back after reopen")
	}
	if a, err := s2.Allocate("new"); err != nil || a.String() != "198.19.1.3" {
		t.Fatalf("the freed address goes to the next allocation: %v %v", a, err)
	}
	// A new lease drops the old table and says what it held.
	s3, dropped, err := Open(path, netip.MustParsePrefix("198.19.2.0/24"))
	if err != nil || len(dropped) != 5 || len(s3.All()) != 0 {
		t.Fatalf("new subnet: %v, dropped %v, kept %v", err, dropped, s3.All())
	}
}

func TestOpenRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, sn := range map[string]string{"v6": "fd00::/64", "tiny": "198.19.0.0/31", "host bits": "198.19.0.1/24"} {
		if _, _, err := Open(filepath.Join(dir, name), netip.MustParsePrefix(sn)); err == nil {
			t.Errorf("%s subnet %s accepted", name, sn)
		}
	}
	sn := netip.MustParsePrefix("198.19.1.0/24")
	for name, body := range map[string]string{
		"not json":  "{",
		"gateway":   `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.1.1"}}`,
		"outside":   `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.9.9"}}`,
		"duplicate": `{"subnet":"198.19.1.0/24","allocs":{"x":"198.19.1.5","y":"198.19.1.5"}}`,
	} {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(p, sn); err == nil {
			t.Errorf("%s: opened", name)
		}
		if b, _ := os.ReadFile(p); string(b) != body {
			t.Errorf("%s: the bad file was overwritten", name)
		}
	}
}

func TestConcurrentAllocate(t *testing.T) {
	s, _, err := Open(filepath.Join(t.TempDir(), "ipam.json"), netip.MustParsePrefix("198.19.3.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	addrs := make([]netip.Addr, 100)
	for i := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addrs[i], _ = s.Allocate(fmt.Sprint("c", i))
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i, a := range addrs {
		if !a.IsValid() || seen[a] {
			t.Fatalf("allocation %d got %v (duplicate or none)", i, a)
		}
		seen[a] = true
	}
}
