package acl

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/hivesec/hive/structs"
)

func TestList(t *testing.T) {
	a := mustCompile(t,
		[]*structs.ACLRole{{Name: "deployer", Rules: []structs.ACLRule{
			rule("job,alloc", "read,list,create", "namespace:web"),
			rule("*", "read", "job:*/frontend"),
			rule("node", "*", "global"),
		}}},
		[]*structs.ACLBinding{
			// Reached twice, through the user and its group: listed once.
			{Name: "alice-deploys", Role: "deployer", Subjects: []string{"user:alice", "group:ops"}, Namespace: "web"},
			{Name: "ops-view", Role: "viewer", Subjects: []string{"group:ops"}, Namespace: "db"},
		})
	got := a.List([]string{"user:alice", "group:ops"})
	var want []Permission
	// viewer's one rule, confined to db; operator has no list action.
	for _, res := range []string{"alloc", "binding", "deployment", "evaluation", "event", "group", "image", "job",
		"namespace", "netpol", "netpol/admin", "node", "operator", "policy", "role", "secret", "serviceaccount", "user"} {
		acts := []string{"list", "read"}
		if res == "operator" {
			acts = []string{"read"}
		}
		want = append(want, Permission{Resource: res, Actions: acts, Scope: "namespace:db", Role: "viewer", Binding: "ops-view"})
	}
	want = append(want,
		Permission{Resource: "*", Actions: []string{"read"}, Scope: "job:web/frontend", Role: "deployer", Binding: "alice-deploys"},
		Permission{Resource: "alloc", Actions: []string{"create", "list", "read"}, Scope: "namespace:web", Role: "deployer", Binding: "alice-deploys"},
		Permission{Resource: "job", Actions: []string{"create", "list", "read"}, Scope: "namespace:web", Role: "deployer", Binding: "alice-deploys"},
		// Listed as confined, though nodes are cluster-wide and no
		// namespace rule reaches them: List shows rules, not objects.
		Permission{Resource: "node", Actions: []string{"*"}, Scope: "namespace:web", Role: "deployer", Binding: "alice-deploys"},
	)
	sortPermissions(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List =\n%v\nwant\n%v", got, want)
	}
	if l := a.List([]string{"user:nobody"}); len(l) != 0 {
		t.Errorf("stranger lists %v", l)
	}
}

func sortPermissions(ps []Permission) {
	sort.Slice(ps, func(i, j int) bool {
		x, y := ps[i], ps[j]
		return x.Resource+"\x00"+x.Scope+"\x00"+x.Role+"\x00"+x.Binding <
			y.Resource+"\x00"+y.Scope+"\x00"+y.Role+"\x00"+y.Binding
	})
}

// TestListMatchesAuthorize: on random worlds, a request is allowed exactly
// when a listed permission covers it, and the list is sorted and free of
// duplicates.
func TestListMatchesAuthorize(t *testing.T) {
	r := rand.New(rand.NewPCG(*seed, 6))
	for w := range 200 {
		roles, bindings := randWorld(r, 1+r.IntN(8), 1+r.IntN(15))
		a := mustCompile(t, roles, bindings)
		for range 20 {
			subjects := randRequest(r).subjects
			list := a.List(subjects)
			if !sort.SliceIsSorted(list, func(i, j int) bool {
				x, y := list[i], list[j]
				return x.Resource+"\x00"+x.Scope+"\x00"+x.Role+"\x00"+x.Binding <
					y.Resource+"\x00"+y.Scope+"\x00"+y.Role+"\x00"+y.Binding
			}) {
				t.Fatalf("List is not sorted: %v", list)
			}
			for i := 1; i < len(list); i++ {
				p, q := list[i-1], list[i]
				if p.Resource == q.Resource && p.Scope == q.Scope && p.Role == q.Role && p.Binding == q.Binding {
					t.Fatalf("List repeats %v", q)
				}
			}
			for range 50 {
				q := randRequest(r)
				q.subjects = subjects
				allowed := a.Authorize(q.subjects, q.resource, q.action, q.namespace, q.name).Allowed
				covered := false
				for _, p := range list {
					listed := structs.ACLRule{Resources: []string{p.Resource}, Actions: p.Actions, Scope: p.Scope}
					if structs.ValidACLAction(q.resource, q.action) &&
						naiveListed(listed.Resources, q.resource) && naiveListed(listed.Actions, q.action) &&
						naiveReaches(&listed, "", q.resource, q.namespace, q.name) {
						covered = true
					}
					if !slices.IsSorted(p.Actions) {
						t.Fatalf("actions not sorted: %v", p)
					}
				}
				if allowed != covered {
					t.Fatalf("world %d: %+v allowed=%v but listed=%v\nlist: %v", w, q, allowed, covered, list)
				}
			}
		}
	}
}
