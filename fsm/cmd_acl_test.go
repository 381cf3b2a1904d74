package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

func aclFixture(t *testing.T) (*FSM, func() uint64) {
	t.Helper()
	f := bootstrapped(t)
	idx := uint64(1)
	next := func() uint64 { idx++; return idx }
	mustApply(t, f, next(), NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "web"}, Create: true})
	mustApply(t, f, next(), ACLWriteType, &ACLWriteRequest{
		Users:  []*structs.User{{Name: "alice", PasswordHash: "h"}, {Name: "bob", PasswordHash: "h"}},
		Groups: []*structs.Group{{Name: "ops", Members: []string{"alice", "bob"}}},
		Roles: []*structs.ACLRole{{Name: "deployer", Rules: []structs.ACLRule{
			{Resources: []string{"job"}, Actions: []string{"create"}, Scope: "namespace:web"}}}},
		Bindings: []*structs.ACLBinding{
			{Name: "solo", Role: "deployer", Subjects: []string{"user:alice"}},
			{Name: "pair", Role: "viewer", Subjects: []string{"user:alice", "user:bob"}},
		},
		ServiceAccounts: []*structs.ServiceAccount{{Namespace: "web", Name: "ci"}},
		Tokens: []*structs.ACLToken{
			{AccessorID: "t-alice", SecretHash: "1", Subject: "user:alice"},
			{AccessorID: "t-bob", SecretHash: "2", Subject: "user:bob"},
			{AccessorID: "t-ci", SecretHash: "3", Subject: "sa:web/ci"},
		},
	})
	return f, next
}

// TestACLWriteDeleteUserCascades checks that a deleted user leaves nothing
// a later user of the same name could inherit: its tokens, its group
// memberships and its place in bindings go with it, and a binding left
// without subjects is deleted.
func TestACLWriteDeleteUserCascades(t *testing.T) {
	f, next := aclFixture(t)
	mustApply(t, f, next(), ACLWriteType, &ACLWriteRequest{DeleteUsers: []string{"alice"}})
	s := f.State().Snapshot()
	if s.User(nil, "alice") != nil || s.ACLToken(nil, "t-alice") != nil {
		t.Error("user or its token survived")
	}
	if s.ACLToken(nil, "t-bob") == nil || s.ACLToken(nil, "t-ci") == nil {
		t.Error("other subjects' tokens were deleted")
	}
	if g := s.Group(nil, "ops"); g == nil || len(g.Members) != 1 || g.Members[0] != "bob" {
		t.Errorf("group ops = %+v, want only bob", g)
	}
	if s.ACLBinding(nil, "solo") != nil {
		t.Error("binding left without subjects survived")
	}
	if b := s.ACLBinding(nil, "pair"); b == nil || len(b.Subjects) != 1 || b.Subjects[0] != "user:bob" {
		t.Errorf("binding pair = %+v, want only user:bob", b)
	}

	mustApply(t, f, next(), ACLWriteType, &ACLWriteRequest{DeleteServiceAccounts: [][2]string{{"web", "ci"}}})
	if f.State().Snapshot().ACLToken(nil, "t-ci") != nil {
		t.Error("service account token survived its account")
	}
}

// TestACLWriteRefusals checks that each invalid write is refused with the
// right error class and changes nothing.
func TestACLWriteRefusals(t *testing.T) {
	cases := []struct {
		name string
		req  *ACLWriteRequest
		want error
	}{
		{"delete built-in role", &ACLWriteRequest{DeleteRoles: []string{"admin"}}, ErrForbidden},
		{"define built-in role", &ACLWriteRequest{Roles: []*structs.ACLRole{{Name: "viewer", Rules: []structs.ACLRule{{Resources: []string{"*"}, Actions: []string{"*"}}}}}}, ErrForbidden},
		{"delete bound role", &ACLWriteRequest{DeleteRoles: []string{"deployer"}}, ErrConflict},
		{"binding to unknown role", &ACLWriteRequest{Bindings: []*structs.ACLBinding{{Name: "x", Role: "nope", Subjects: []string{"user:bob"}}}}, ErrInvalid},
		{"binding in unknown namespace", &ACLWriteRequest{Bindings: []*structs.ACLBinding{{Name: "x", Role: "viewer", Subjects: []string{"user:bob"}, Namespace: "nope"}}}, ErrInvalid},
		{"bad subject", &ACLWriteRequest{Bindings: []*structs.ACLBinding{{Name: "x", Role: "viewer", Subjects: []string{"bob"}}}}, ErrInvalid},
		{"user without hash", &ACLWriteRequest{Users: []*structs.User{{Name: "carol"}}}, ErrInvalid},
		{"token secret swap", &ACLWriteRequest{Tokens: []*structs.ACLToken{{AccessorID: "t-bob", SecretHash: "other"}}}, ErrConflict},
		{"delete missing user", &ACLWriteRequest{DeleteUsers: []string{"nobody"}}, state.ErrNotFound},
		{"role with bad rule", &ACLWriteRequest{Roles: []*structs.ACLRole{{Name: "bad", Rules: []structs.ACLRule{{Resources: []string{"jobz"}, Actions: []string{"read"}}}}}}, ErrInvalid},
		// One bad record refuses the whole write, good records included.
		{"mixed", &ACLWriteRequest{Users: []*structs.User{{Name: "carol", PasswordHash: "h"}}, DeleteGroups: []string{"nope"}}, state.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, next := aclFixture(t)
			before := dump(t, f.State())
			res := apply(t, f, next(), ACLWriteType, c.req)
			if !errors.Is(res.Err, c.want) {
				t.Fatalf("err = %v, want %v", res.Err, c.want)
			}
			requireSameState(t, before, dump(t, f.State()))
		})
	}
}

// TestACLWriteExpireTokens checks rotation: expiry only moves earlier.
func TestACLWriteExpireTokens(t *testing.T) {
	f, next := aclFixture(t)
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	mustApply(t, f, next(), ACLWriteType, &ACLWriteRequest{ExpireTokens: map[string]time.Time{"t-ci": at}})
	if got := f.State().Snapshot().ACLToken(nil, "t-ci").ExpiresAt; !got.Equal(at) {
		t.Fatalf("expiry %v, want %v", got, at)
	}
	mustApply(t, f, next(), ACLWriteType, &ACLWriteRequest{ExpireTokens: map[string]time.Time{"t-ci": at.Add(time.Hour)}})
	if got := f.State().Snapshot().ACLToken(nil, "t-ci").ExpiresAt; !got.Equal(at) {
		t.Fatalf("a later expiry moved it to %v", got)
	}
}
