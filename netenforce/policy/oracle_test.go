package policy

import (
	"math/rand/v2"
	"testing"
)

// TestCompiledMatchesOracle holds the compiled ruleset, evaluated by map
// lookups, against the plain evaluator on random clusters and flows.
func TestCompiledMatchesOracle(t *testing.T) {
	worlds, flows := 400, 300 // 120,000 flows
	if testing.Short() {
		worlds = 50
	}
	g := gen{rand.New(rand.NewPCG(7, 11))}
	total, allowed := 0, 0
	for wi := range worlds {
		w := g.world()
		r, err := Compile(w.eps, w.policies, w.admin)
		if err != nil {
			t.Fatalf("world %d: generator made an invalid world: %v", wi, err)
		}
		auditPols := withoutAudit(w.policies)
		for range flows {
			f := g.flow(&w)
			want := Allowed(f, w.eps, w.policies, w.admin)
			if got := r.Evaluate(f); got != want {
				t.Fatalf("world %d: flow %+v: ruleset says %v, oracle %v\nendpoints: %+v\npolicies: %+v\nadmin: %+v", wi, f, got, want, w.eps, w.policies, w.admin)
			}
			if r.Audit != nil {
				wantAudit := Allowed(f, w.eps, auditPols, w.admin)
				if got := r.Audit.Evaluate(f); got != wantAudit {
					t.Fatalf("world %d: flow %+v: audit ruleset says %v, oracle %v", wi, f, got, wantAudit)
				}
			}
			total++
			if want {
				allowed++
			}
		}
	}
	// A generator that allows (or denies) nearly everything would make
	// agreement meaningless.
	if allowed < total/10 || allowed > total*9/10 {
		t.Errorf("unbalanced flows: %d of %d allowed", allowed, total)
	}
	t.Logf("%d flows agree, %d allowed", total, allowed)
}
