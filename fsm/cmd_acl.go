package fsm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hivesec/hive/acl"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// ACLWriteType changes identity and RBAC records.
const ACLWriteType MessageType = 22

// ACLWriteRequest changes users, groups, roles, bindings, service accounts
// and API tokens in one entry, so that what belongs together (a user and
// its tokens, the bootstrap token and the first user) changes together.
// Deletes run first, then upserts; deleting a user or service account also
// deletes its tokens and drops it from every group and binding (a binding
// left without subjects is deleted), and deleting a group drops it from
// every binding, so a later record of the same name inherits nothing.
type ACLWriteRequest struct {
	DeleteUsers           []string
	DeleteGroups          []string
	DeleteRoles           []string
	DeleteBindings        []string
	DeleteServiceAccounts [][2]string // namespace, name
	DeleteTokens          []string    // accessor IDs

	Users           []*structs.User
	Groups          []*structs.Group
	Roles           []*structs.ACLRole
	Bindings        []*structs.ACLBinding
	ServiceAccounts []*structs.ServiceAccount
	Tokens          []*structs.ACLToken
	// ExpireTokens moves tokens' expiry earlier (service account token
	// rotation): accessor ID → new expiry. A later expiry is ignored.
	ExpireTokens map[string]time.Time
	Now          time.Time
}

func init() {
	register(ACLWriteType, "acl write", applyACLWrite)
}

func builtinRole(name string) bool {
	for _, r := range acl.BuiltinRoles() {
		if r.Name == name {
			return true
		}
	}
	return false
}

func invalid(err error) error { return fmt.Errorf("%w: %w", err, ErrInvalid) }

func applyACLWrite(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[ACLWriteRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := checkACLWrite(txn.Read(), req); err != nil {
		return nil, err
	}
	return nil, writeACL(txn, req)
}

// checkACLWrite validates the whole request against the state it will
// change, so that a refused write changes nothing.
func checkACLWrite(r *state.Snapshot, req *ACLWriteRequest) error {
	for _, n := range req.DeleteUsers {
		if r.User(nil, n) == nil {
			return fmt.Errorf("user %q: %w", n, state.ErrNotFound)
		}
	}
	for _, n := range req.DeleteGroups {
		if r.Group(nil, n) == nil {
			return fmt.Errorf("group %q: %w", n, state.ErrNotFound)
		}
	}
	deletedRoles := map[string]bool{}
	for _, n := range req.DeleteRoles {
		if builtinRole(n) {
			return fmt.Errorf("role %q is built in and cannot be deleted: %w", n, ErrForbidden)
		}
		if r.ACLRole(nil, n) == nil {
			return fmt.Errorf("role %q: %w", n, state.ErrNotFound)
		}
		deletedRoles[n] = true
	}
	deletedBindings := map[string]bool{}
	for _, n := range req.DeleteBindings {
		if r.ACLBinding(nil, n) == nil {
			return fmt.Errorf("binding %q: %w", n, state.ErrNotFound)
		}
		deletedBindings[n] = true
	}
	for _, k := range req.DeleteServiceAccounts {
		if r.ServiceAccount(nil, k[0], k[1]) == nil {
			return fmt.Errorf("service account %s/%s: %w", k[0], k[1], state.ErrNotFound)
		}
	}
	for _, a := range req.DeleteTokens {
		if r.ACLToken(nil, a) == nil {
			return fmt.Errorf("token %s: %w", a, state.ErrNotFound)
		}
	}
	for _, u := range req.Users {
		if u == nil {
			return invalid(errors.New("nil user"))
		}
		if err := u.Validate(); err != nil {
			return invalid(err)
		}
		if u.PasswordHash == "" {
			return invalid(fmt.Errorf("user %q has no password hash", u.Name))
		}
	}
	for _, g := range req.Groups {
		if g == nil {
			return invalid(errors.New("nil group"))
		}
		if err := g.Validate(); err != nil {
			return invalid(err)
		}
	}
	newRoles := map[string]bool{}
	for _, role := range req.Roles {
		if role == nil {
			return invalid(errors.New("nil role"))
		}
		if builtinRole(role.Name) || role.BuiltIn {
			return fmt.Errorf("role %q: %w: %w", role.Name, acl.ErrBuiltinRole, ErrForbidden)
		}
		if err := role.Validate(); err != nil {
			return invalid(err)
		}
		newRoles[role.Name] = true
	}
	roleExists := func(n string) bool {
		return newRoles[n] || builtinRole(n) || (r.ACLRole(nil, n) != nil && !deletedRoles[n])
	}
	newBindings := map[string]bool{}
	for _, b := range req.Bindings {
		if b == nil {
			return invalid(errors.New("nil binding"))
		}
		if err := b.Validate(); err != nil {
			return invalid(err)
		}
		if !roleExists(b.Role) {
			return invalid(fmt.Errorf("binding %q: role %q does not exist; create it first", b.Name, b.Role))
		}
		if b.Namespace != "" && r.Namespace(nil, b.Namespace) == nil {
			return invalid(fmt.Errorf("binding %q: namespace %q does not exist", b.Name, b.Namespace))
		}
		newBindings[b.Name] = true
	}
	// A role still bound after this write must survive it.
	for n := range deletedRoles {
		for _, b := range r.ACLBindingsByRole(nil, n) {
			if !deletedBindings[b.Name] && !newBindings[b.Name] {
				return fmt.Errorf("role %q is used by binding %q; delete the binding first: %w", n, b.Name, ErrConflict)
			}
		}
	}
	for _, sa := range req.ServiceAccounts {
		if sa == nil {
			return invalid(errors.New("nil service account"))
		}
		if err := sa.Validate(); err != nil {
			return invalid(err)
		}
		if r.Namespace(nil, sa.Namespace) == nil {
			return invalid(fmt.Errorf("service account %s/%s: namespace %q does not exist", sa.Namespace, sa.Name, sa.Namespace))
		}
	}
	for _, t := range req.Tokens {
		if t == nil || t.AccessorID == "" || t.SecretHash == "" {
			return invalid(errors.New("token has no accessor ID or secret hash"))
		}
		if t.Role != "" && !roleExists(t.Role) {
			return invalid(fmt.Errorf("token %s: role %q does not exist", t.AccessorID, t.Role))
		}
		if old := r.ACLToken(nil, t.AccessorID); old != nil && old.SecretHash != t.SecretHash {
			return fmt.Errorf("token %s exists with another secret: %w", t.AccessorID, ErrConflict)
		}
	}
	for a := range req.ExpireTokens {
		if r.ACLToken(nil, a) == nil {
			return fmt.Errorf("token %s: %w", a, state.ErrNotFound)
		}
	}
	return nil
}

func writeACL(txn *state.Txn, req *ACLWriteRequest) error {
	for _, n := range req.DeleteUsers {
		if err := dropSubject(txn, structs.UserSubject(n), n); err != nil {
			return err
		}
		if err := txn.DeleteUser(n); err != nil {
			return err
		}
	}
	for _, k := range req.DeleteServiceAccounts {
		if err := dropSubject(txn, structs.ServiceAccountSubject(k[0], k[1]), ""); err != nil {
			return err
		}
		if err := txn.DeleteServiceAccount(k[0], k[1]); err != nil {
			return err
		}
	}
	for _, n := range req.DeleteGroups {
		if err := dropSubject(txn, structs.GroupSubject(n), ""); err != nil {
			return err
		}
		if err := txn.DeleteGroup(n); err != nil {
			return err
		}
	}
	for _, n := range req.DeleteBindings {
		if txn.Read().ACLBinding(nil, n) == nil {
			continue // emptied and removed with a subject above
		}
		if err := txn.DeleteACLBinding(n); err != nil {
			return err
		}
	}
	for _, n := range req.DeleteRoles {
		if err := txn.DeleteACLRole(n); err != nil {
			return err
		}
	}
	for _, a := range req.DeleteTokens {
		if txn.Read().ACLToken(nil, a) == nil {
			continue // went with its subject above
		}
		if err := txn.DeleteACLToken(a); err != nil {
			return err
		}
	}
	for _, u := range req.Users {
		if err := txn.UpsertUser(u); err != nil {
			return err
		}
	}
	for _, g := range req.Groups {
		if err := txn.UpsertGroup(g); err != nil {
			return err
		}
	}
	for _, r := range req.Roles {
		if err := txn.UpsertACLRole(r); err != nil {
			return err
		}
	}
	for _, b := range req.Bindings {
		if err := txn.UpsertACLBinding(b); err != nil {
			return err
		}
	}
	for _, sa := range req.ServiceAccounts {
		if err := txn.UpsertServiceAccount(sa); err != nil {
			return err
		}
	}
	for _, t := range req.Tokens {
		if err := txn.UpsertACLToken(t); err != nil {
			return err
		}
	}
	for a, at := range req.ExpireTokens {
		tok := txn.Read().ACLToken(nil, a)
		if tok == nil || (!tok.ExpiresAt.IsZero() && !at.Before(tok.ExpiresAt)) {
			continue
		}
		cp := *tok
		cp.ExpiresAt = at
		if err := txn.UpsertACLToken(&cp); err != nil {
			return err
		}
	}
	return nil
}

// dropSubject deletes the tokens of subject, removes it from every binding
// (deleting bindings it leaves empty) and, for a user, from every group.
func dropSubject(txn *state.Txn, subject, user string) error {
	for _, t := range txn.Read().ACLTokensBySubject(nil, subject) {
		if err := txn.DeleteACLToken(t.AccessorID); err != nil {
			return err
		}
	}
	for _, b := range txn.Read().ACLBindings(nil) {
		if !slices.Contains(b.Subjects, subject) {
			continue
		}
		cp := *b
		cp.Subjects = slices.DeleteFunc(slices.Clone(b.Subjects), func(s string) bool { return s == subject })
		var err error
		if len(cp.Subjects) == 0 {
			err = txn.DeleteACLBinding(b.Name)
		} else {
			err = txn.UpsertACLBinding(&cp)
		}
		if err != nil {
			return err
		}
	}
	if user == "" {
		return nil
	}
	for _, g := range txn.Read().Groups(nil) {
		if !slices.Contains(g.Members, user) {
			continue
		}
		cp := *g
		cp.Members = slices.DeleteFunc(slices.Clone(g.Members), func(m string) bool { return m == user })
		if err := txn.UpsertGroup(&cp); err != nil {
			return err
		}
	}
	return nil
}
