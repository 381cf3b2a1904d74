package nft

import (
	"testing"

	"github.com/hivesec/hive/netenforce/policy"
)

// BenchmarkApply is compile + apply of 10,000 policies over 10,000
// endpoints as one batch into a test namespace (target ≤ 1 s); the apply
// sub-benchmark is the netlink part alone.
func BenchmarkApply(b *testing.B) {
	requirePrereqs(b)
	ns := newNS(b)
	eps, pols := benchCluster(10000, 10000)
	a := New(WithNetNS(int(ns.h)))
	b.Run("compile+apply", func(b *testing.B) {
		var r *policy.Ruleset
		for b.Loop() {
			var err error
			if r, err = policy.Compile(eps, pols, nil); err != nil {
				b.Fatal(err)
			}
			if err := a.Apply(r); err != nil {
				b.Fatal(err)
			}
		}
		p := plan(r, nil)
		b.ReportMetric(float64(p.elements), "elements")
		b.ReportMetric(float64(len(p.split(DefaultMaxBatchBytes))), "batches")
	})
	r, err := policy.Compile(eps, pols, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("apply", func(b *testing.B) {
		for b.Loop() {
			if err := a.Apply(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := a.Delete(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQuarantineSync is what a worker does when one allocation is
// quarantined in a small cluster (100 endpoints, 100 policies): compile the
// whole view again, bank the counters and replace the table. It is the
// node's share of "quarantine within 100 ms".
func BenchmarkQuarantineSync(b *testing.B) {
	requirePrereqs(b)
	ns := newNS(b)
	eps, pols := benchCluster(100, 100)
	a := New(WithNetNS(int(ns.h)))
	defer a.Delete()
	i := 0
	for b.Loop() {
		eps[i%len(eps)].Quarantined = !eps[i%len(eps)].Quarantined
		i++
		r, err := policy.Compile(eps, pols, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Counters(); err != nil {
			b.Fatal(err)
		}
		if err := a.Apply(r); err != nil {
			b.Fatal(err)
		}
	}
}
