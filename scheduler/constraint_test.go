package scheduler

import (
	"testing"

	"github.com/hivesec/hive/structs"
)

func TestConstraints(t *testing.T) {
	n := testNode("n1", "dc1", 1, 1)
	n.Labels["rack"] = "r3"
	n.Attributes["features"] = "sse4, avx2,aes"
	n.Attributes["kernel.version"] = "5.10.0-21-amd64"
	for _, tc := range []struct {
		l, op, r string
		want     bool
	}{
		{"${node.datacenter}", "=", "dc1", true},
		{"${node.datacenter}", "=", "dc2", false},
		{"${node.unique.id}", "=", "n1", true},
		{"${node.unique.name}", "!=", "name-n1", false},
		{"${meta.rack}", "!=", "r1", true},
		{"${meta.missing}", "!=", "r1", true}, // as Nomad: missing differs
		{"${meta.missing}", "=", "", false},
		{"${meta.rack}", "regexp", "^r[0-3]$", true},
		{"${meta.rack}", "regexp", "^r[4-9]$", false},
		{"${attr.features}", "set_contains", "avx2,aes", true},
		{"${attr.features}", "set_contains", "avx2,avx512", false},
		{"${attr.features}", "set_contains_any", "avx512,aes", true},
		{"${attr.kernel.version}", "version", ">= 5.10", true},
		{"${attr.kernel.version}", "version", ">= 5.10, < 6", true},
		{"${attr.kernel.version}", "version", "> 5.10.0", false},
		{"${attr.kernel.version}", "version", "~> 5.9", true},
		{"${attr.kernel.version}", "version", "~> 5.9.1", false},
		{"${attr.kernel.version}", "version", "= 5.10", true},
		{"${attr.missing}", "version", ">= 1", false},
		{"${meta.rack}", "is_set", "", true},
		{"${meta.nope}", "is_not_set", "", true},
		{"${attr.kernel.version}", "<", "6", true},
	} {
		chk, err := compileConstraint(&structs.Constraint{LTarget: tc.l, Operand: tc.op, RTarget: tc.r})
		if err != nil {
			t.Fatalf("%s %s %s: %v", tc.l, tc.op, tc.r, err)
		}
		if got := chk(n); got != tc.want {
			t.Errorf("%s %s %s = %v, want %v", tc.l, tc.op, tc.r, got, tc.want)
		}
	}
	for _, bad := range []*structs.Constraint{
		{LTarget: "${meta.x}", Operand: "regexp", RTarget: "("},
		{LTarget: "${attr.v}", Operand: "version", RTarget: ">= abc"},
		{LTarget: "${attr.v}", Operand: "like", RTarget: "x"},
	} {
		if _, err := compileConstraint(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.2", "1.2.0", 0}, {"1.10", "1.9", 1}, {"v2.0.1", "2.0.0", 1}, {"4.19.0-25-amd64", "5", -1},
	} {
		a, _ := parseVersion(tc.a)
		b, _ := parseVersion(tc.b)
		if got := a.compare(b); got != tc.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	if _, ok := parseVersion("abc"); ok {
		t.Error("abc parsed as a version")
	}
}

func TestRescheduleDelay(t *testing.T) {
	p := &structs.ReschedulePolicy{Delay: 10, MaxDelay: 100}
	for _, tc := range []struct {
		fn   string
		want []int
	}{
		{"constant", []int{10, 10, 10, 10}},
		{"exponential", []int{10, 20, 40, 80, 100, 100}},
		{"fibonacci", []int{10, 10, 20, 30, 50, 80, 100}},
	} {
		p.DelayFunction = tc.fn
		for n, w := range tc.want {
			if got := rescheduleDelay(p, n); int(got) != w {
				t.Errorf("%s delay #%d = %d, want %d", tc.fn, n, got, w)
			}
		}
	}
}
