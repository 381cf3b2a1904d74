package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/hivesec/hive/acl"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// Every route that a user may call declares the permission it needs: a
// resource and an action from structs.ACLResources, and where the request
// reaches (scope). The wrapper asks the compiled authorizer before the
// handler runs, so a handler never sees a request its caller may not make.

// scopeFn says which namespace and named object a request reaches. body is
// the request body for routes that set needsBody (nil otherwise): a job
// submission's namespace is in the job, and the wrapper reads the body
// once, before the handler, so the decision is made on what the handler
// will act on. ns "" means a cluster-wide object, which only global grants
// reach.
type scopeFn func(s *Server, r *http.Request, body []byte) (ns, name string, err error)

// perm is a route's permission.
type perm struct {
	resource, action string
	scope            scopeFn // nil: cluster-wide
	needsBody        bool
}

func p(resource, action string, scope scopeFn) *perm {
	return &perm{resource: resource, action: action, scope: scope}
}

// pb is p for a scope read from the body.
func pb(resource, action string, scope scopeFn) *perm {
	return &perm{resource: resource, action: action, scope: scope, needsBody: true}
}

// inNamespace: the ?namespace= parameter (default "default").
func inNamespace(_ *Server, r *http.Request, _ []byte) (string, string, error) {
	return namespaceParam(r), "", nil
}

// anyNamespace: ?namespace= if given, else every namespace, which only a
// global grant reaches (listing across namespaces).
func anyNamespace(_ *Server, r *http.Request, _ []byte) (string, string, error) {
	return r.URL.Query().Get("namespace"), "", nil
}

// nsAndName: ?namespace= and the {param} path value as the object's name.
func nsAndName(param string) scopeFn {
	return func(_ *Server, r *http.Request, _ []byte) (string, string, error) {
		return namespaceParam(r), r.PathValue(param), nil
	}
}

// named: a cluster-wide object named by the {param} path value.
func named(param string) scopeFn {
	return func(_ *Server, r *http.Request, _ []byte) (string, string, error) {
		return "", r.PathValue(param), nil
	}
}

// pathNamespace: a namespace named by the {name} path value, reached by
// grants in that namespace (a developer there may read it).
func pathNamespace(_ *Server, r *http.Request, _ []byte) (string, string, error) {
	return r.PathValue("name"), r.PathValue("name"), nil
}

// pathNSName: namespace and name both in the path ({ns}/{name}).
func pathNSName(_ *Server, r *http.Request, _ []byte) (string, string, error) {
	return r.PathValue("ns"), r.PathValue("name"), nil
}

// recordNamespace finds the namespace of the object a path names (an
// allocation, evaluation or deployment ID). An unknown ID is authorized
// against ?namespace=, so a caller learns that it does not exist only where
// it may look.
func recordNamespace(lookup func(snap *state.Snapshot, id string) (string, bool)) scopeFn {
	return func(s *Server, r *http.Request, _ []byte) (string, string, error) {
		id := r.PathValue("id")
		if ns, ok := lookup(s.fsm.State().Snapshot(), id); ok {
			return ns, id, nil
		}
		return namespaceParam(r), id, nil
	}
}

var (
	allocScope = recordNamespace(func(snap *state.Snapshot, id string) (string, bool) {
		if a := snap.Alloc(nil, id); a != nil {
			return a.Namespace, true
		}
		return "", false
	})
	evalScope = recordNamespace(func(snap *state.Snapshot, id string) (string, bool) {
		if e := snap.Eval(nil, id); e != nil {
			return e.Namespace, true
		}
		return "", false
	})
	deploymentScope = recordNamespace(func(snap *state.Snapshot, id string) (string, bool) {
		if d := snap.Deployment(nil, id); d != nil {
			return d.Namespace, true
		}
		return "", false
	})
)

// bodyNamespace reads a "namespace" field from the body (jobs carry it in
// "job"); a body that names none is in ?namespace= (default "default"),
// and one that disagrees with ?namespace= is refused.
func bodyNamespace(field string) scopeFn {
	return func(_ *Server, r *http.Request, body []byte) (string, string, error) {
		ns := namespaceParam(r)
		var probe map[string]json.RawMessage
		if json.Unmarshal(body, &probe) != nil {
			return ns, "", nil // the handler reports the bad body
		}
		raw := probe[field]
		if field == "job" {
			var j struct {
				Namespace string `json:"Namespace"`
				ID        string `json:"ID"`
			}
			if json.Unmarshal(raw, &j) != nil {
				return ns, "", nil
			}
			return pickNamespace(r, ns, j.Namespace, j.ID)
		}
		var v string
		if raw != nil && json.Unmarshal(raw, &v) != nil {
			return ns, "", nil
		}
		return pickNamespace(r, ns, v, "")
	}
}

func pickNamespace(r *http.Request, param, inBody, name string) (string, string, error) {
	switch {
	case inBody == "":
		return param, name, nil
	case r.URL.Query().Get("namespace") != "" && inBody != param:
		return "", "", badRequest("the body's namespace %q differs from ?namespace=%s", inBody, param)
	}
	return inBody, name, nil
}

// bindingScope: a binding confined to a namespace is authorized there, a
// global one globally. PUT carries it in the body; DELETE reads the stored
// binding.
func bindingScope(s *Server, r *http.Request, body []byte) (string, string, error) {
	name := r.PathValue("name")
	if body != nil {
		var b struct {
			Namespace string `json:"Namespace"`
		}
		_ = json.Unmarshal(body, &b)
		return b.Namespace, name, nil
	}
	if b := s.fsm.State().Snapshot().ACLBinding(nil, name); b != nil {
		return b.Namespace, name, nil
	}
	return "", name, nil
}

// readBody buffers a request body (already bounded by MaxBytesReader) so a
// scope function and then the handler can both read it.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// authzCache holds the authorizer compiled from the RBAC tables at some
// state, with each user's groups, and recompiles when those tables move.
type authzCache struct {
	mu  sync.Mutex
	key [4]uint64
	cur *compiledAuthz
}

type compiledAuthz struct {
	authz  *acl.Authorizer
	groups map[string][]string // user → groups
	err    error
}

// tokenSubject names a role-bound token in the authorizer.
func tokenSubject(accessor string) string { return structs.SubjectTokenPrefix + accessor }

func (c *authzCache) get(snap *state.Snapshot) *compiledAuthz {
	key := [4]uint64{snap.Index(state.TableACLRoles), snap.Index(state.TableACLBindings), snap.Index(state.TableACLTokens), snap.Index(state.TableGroups)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && c.key == key {
		return c.cur
	}
	bindings := snap.ACLBindings(nil)
	// A token with a role holds that role through a binding of its own.
	for _, t := range snap.ACLTokens(nil) {
		if t.Role != "" {
			bindings = append(bindings, &structs.ACLBinding{
				Name: "token-" + t.AccessorID, Role: t.Role, Namespace: t.Namespace,
				Subjects: []string{tokenSubject(t.AccessorID)},
			})
		}
	}
	a, err := acl.Compile(snap.ACLRoles(nil), bindings)
	groups := map[string][]string{}
	for _, g := range snap.Groups(nil) {
		for _, m := range g.Members {
			groups[m] = append(groups[m], g.Name)
		}
	}
	c.key, c.cur = key, &compiledAuthz{authz: a, groups: groups, err: err}
	return c.cur
}

// subjects resolves who a token acts as, from the current state: a user's
// groups and existence are read now, not when the token was issued, so
// removing a user from a group or deleting it takes effect at once.
func (s *Server) subjects(snap *state.Snapshot, ca *compiledAuthz, tok *structs.ACLToken) ([]string, error) {
	switch {
	case tok.Kind == structs.ACLTokenKindManagement:
		return nil, nil
	case tok.Role != "":
		return []string{tokenSubject(tok.AccessorID)}, nil
	case strings.HasPrefix(tok.Subject, structs.SubjectUserPrefix):
		name := strings.TrimPrefix(tok.Subject, structs.SubjectUserPrefix)
		u := snap.User(nil, name)
		if u == nil {
			return nil, fmt.Errorf("user %q no longer exists", name)
		}
		if u.Disabled {
			return nil, fmt.Errorf("user %q is disabled", name)
		}
		out := []string{tok.Subject}
		for _, g := range ca.groups[name] {
			out = append(out, structs.GroupSubject(g))
		}
		return out, nil
	case strings.HasPrefix(tok.Subject, structs.SubjectServiceAccountPrefix):
		ns, name, _ := strings.Cut(strings.TrimPrefix(tok.Subject, structs.SubjectServiceAccountPrefix), "/")
		if snap.ServiceAccount(nil, ns, name) == nil {
			return nil, fmt.Errorf("service account %s/%s no longer exists", ns, name)
		}
		return []string{tok.Subject}, nil
	}
	return nil, fmt.Errorf("token %s has no subject", tok.AccessorID)
}

// decide answers whether caller c may do action on resource at ns/name.
func (s *Server) decide(c *caller, resource, action, ns, name string) acl.Decision {
	if c.management {
		return acl.Decision{Allowed: true, Role: "admin", Binding: "bootstrap token", Rule: "*:* @ global"}
	}
	if len(c.subjects) == 0 {
		return acl.Decision{}
	}
	ca := s.authzCache.get(s.fsm.State().Snapshot())
	if ca.err != nil {
		// A state the authorizer cannot compile denies everything rather
		// than guess; the error is logged for the operator.
		s.logger.Error("cannot compile RBAC rules; denying every request", "error", ca.err)
		return acl.Decision{}
	}
	return ca.authz.Authorize(c.subjects, resource, action, ns, name)
}

// authorizeRoute runs a route's permission check for caller c.
func (s *Server) authorizeRoute(rt route, r *http.Request, c *caller) error {
	var body []byte
	if rt.perm.needsBody {
		b, err := readBody(r)
		if err != nil {
			return err
		}
		body = b
	}
	ns, name := "", ""
	if rt.perm.scope != nil {
		var err error
		if ns, name, err = rt.perm.scope(s, r, body); err != nil {
			return err
		}
	}
	c.resource, c.action, c.namespace, c.name = rt.perm.resource, rt.perm.action, ns, name
	d := s.decide(c, rt.perm.resource, rt.perm.action, ns, name)
	if !d.Allowed {
		c.reason = "no rule allows it"
		s.metrics.denied.WithLabelValues(rt.perm.resource, rt.perm.action).Inc()
		where := "cluster-wide"
		if ns != "" {
			where = "in namespace " + ns
		}
		return errorf(http.StatusForbidden, "forbidden", "forbidden: %s may not %s %s %s; ask an administrator for a role that grants %s:%s (check with `hive auth can-i %s %s`)",
			c, rt.perm.action, rt.perm.resource, where, rt.perm.resource, rt.perm.action, rt.perm.action, rt.perm.resource)
	}
	c.reason = fmt.Sprintf("role %s via %s (%s)", d.Role, d.Binding, d.Rule)
	return nil
}

// requireGrant refuses a caller granting (through a role, binding or
// token) a role it does not itself hold at that scope.
func (s *Server) requireGrant(c *caller, role *structs.ACLRole, ns string) error {
	if c.management {
		return nil
	}
	ca := s.authzCache.get(s.fsm.State().Snapshot())
	if ca.err != nil {
		return fmt.Errorf("RBAC rules do not compile: %w", ca.err)
	}
	if err := ca.authz.CheckGrant(c.subjects, role, ns); err != nil {
		return errorf(http.StatusForbidden, "escalation", "%v", err)
	}
	return nil
}

// roleByName finds a stored or built-in role.
func (s *Server) roleByName(snap *state.Snapshot, name string) *structs.ACLRole {
	if r := snap.ACLRole(nil, name); r != nil {
		return r
	}
	for _, r := range acl.BuiltinRoles() {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// allRoles lists built-in and stored roles by name.
func (s *Server) allRoles(snap *state.Snapshot) []*structs.ACLRole {
	out := append(acl.BuiltinRoles(), snap.ACLRoles(nil)...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
