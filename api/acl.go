package api

import (
	"net/http"
	"net/url"

	"github.com/hivesec/hive/structs"
)

// ACL groups the identity and authorization endpoints: logging in and out,
// asking who the caller is and what it may do, and managing users, groups,
// roles, bindings, API tokens and service accounts.
type ACL struct{ c *Client }

// ACL returns the identity and authorization endpoints.
func (c *Client) ACL() *ACL { return &ACL{c} }

// Login exchanges a user's password for a session token. It never sends
// the client's own token: a stale or revoked one must not stand in the way
// of getting a new one.
func (a *ACL) Login(req structs.LoginRequest) (*structs.TokenSecret, error) {
	if err := checkID("user name", req.User); err != nil {
		return nil, err
	}
	anon := *a.c
	anon.token = ""
	var out structs.TokenSecret
	if err := anon.write(http.MethodPost, "/v1/login", &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Logout revokes the token the client calls with.
func (a *ACL) Logout() error {
	return a.c.write(http.MethodPost, "/v1/logout", nil, nil)
}

// WhoAmI says who the caller is: its subject, the groups it acts as, and
// the token it called with.
func (a *ACL) WhoAmI() (*structs.WhoAmI, error) {
	var out structs.WhoAmI
	if _, err := a.c.query("/v1/whoami", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CanIRequest is one authorization question: may the caller (or As) do
// Action on Resource, in Namespace ("" for cluster-wide objects), on the
// object called Name ("" for none)?
type CanIRequest struct {
	Resource  string
	Action    string
	Namespace string
	Name      string
	// As asks about another subject ("user:bob"); that takes the right to
	// read bindings.
	As string
}

// CanI asks the server to authorize a request without making it.
func (a *ACL) CanI(req CanIRequest) (*structs.CanIResponse, error) {
	if err := checkID("resource", req.Resource); err != nil {
		return nil, err
	}
	if err := checkID("action", req.Action); err != nil {
		return nil, err
	}
	v := url.Values{}
	v.Set("resource", req.Resource)
	v.Set("action", req.Action)
	setIf(v, "namespace", req.Namespace)
	setIf(v, "name", req.Name)
	setIf(v, "as", req.As)
	var out structs.CanIResponse
	if _, err := a.c.query("/v1/auth/can-i?"+v.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Permissions lists what the caller (or the subject as, when not empty)
// may do.
func (a *ACL) Permissions(as string) (*structs.PermissionsResponse, error) {
	path := "/v1/auth/permissions"
	if as != "" {
		path += "?" + url.Values{"as": {as}}.Encode()
	}
	var out structs.PermissionsResponse
	if _, err := a.c.query(path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func setIf(v url.Values, key, value string) {
	if value != "" {
		v.Set(key, value)
	}
}

// Users manages users, who log in with a password.
type Users struct{ c *Client }

// Users returns the user endpoints.
func (a *ACL) Users() *Users { return &Users{a.c} }

// List returns every user.
func (u *Users) List(q *QueryOptions) ([]structs.UserInfo, *QueryMeta, error) {
	var out []structs.UserInfo
	meta, err := u.c.query("/v1/users", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one user.
func (u *Users) Info(name string, q *QueryOptions) (*structs.UserInfo, *QueryMeta, error) {
	if err := checkID("user name", name); err != nil {
		return nil, nil, err
	}
	var out structs.UserInfo
	meta, err := u.c.query("/v1/user/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Create creates a user with a password.
func (u *Users) Create(name string, req structs.UserRequest) (*structs.UserInfo, error) {
	if err := checkID("user name", name); err != nil {
		return nil, err
	}
	var out structs.UserInfo
	if err := u.c.write(http.MethodPut, "/v1/user/"+esc(name), &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a user; its tokens stop working.
func (u *Users) Delete(name string) error {
	if err := checkID("user name", name); err != nil {
		return err
	}
	return u.c.write(http.MethodDelete, "/v1/user/"+esc(name), nil, nil)
}

// SetPassword changes a user's password. A user changing its own password
// sets req.OldPassword.
func (u *Users) SetPassword(name string, req structs.PasswordRequest) error {
	if err := checkID("user name", name); err != nil {
		return err
	}
	return u.c.write(http.MethodPut, "/v1/user/"+esc(name)+"/password", &req, nil)
}

// Groups manages groups of users.
type Groups struct{ c *Client }

// Groups returns the group endpoints.
func (a *ACL) Groups() *Groups { return &Groups{a.c} }

// List returns every group.
func (g *Groups) List(q *QueryOptions) ([]structs.Group, *QueryMeta, error) {
	var out []structs.Group
	meta, err := g.c.query("/v1/groups", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one group.
func (g *Groups) Info(name string, q *QueryOptions) (*structs.Group, *QueryMeta, error) {
	if err := checkID("group name", name); err != nil {
		return nil, nil, err
	}
	var out structs.Group
	meta, err := g.c.query("/v1/group/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Create creates a group.
func (g *Groups) Create(name string, req structs.GroupRequest) (*structs.Group, error) {
	if err := checkID("group name", name); err != nil {
		return nil, err
	}
	var out structs.Group
	if err := g.c.write(http.MethodPut, "/v1/group/"+esc(name), &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a group.
func (g *Groups) Delete(name string) error {
	if err := checkID("group name", name); err != nil {
		return err
	}
	return g.c.write(http.MethodDelete, "/v1/group/"+esc(name), nil, nil)
}

// UpdateMembers adds and removes members of a group and returns the group
// as it is afterwards.
func (g *Groups) UpdateMembers(name string, req structs.GroupMembersRequest) (*structs.Group, error) {
	if err := checkID("group name", name); err != nil {
		return nil, err
	}
	var out structs.Group
	if err := g.c.write(http.MethodPost, "/v1/group/"+esc(name)+"/members", &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Roles manages roles, the named sets of rules bindings give out.
type Roles struct{ c *Client }

// Roles returns the role endpoints.
func (a *ACL) Roles() *Roles { return &Roles{a.c} }

// List returns every role, built-in ones included.
func (r *Roles) List(q *QueryOptions) ([]structs.ACLRole, *QueryMeta, error) {
	var out []structs.ACLRole
	meta, err := r.c.query("/v1/roles", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one role.
func (r *Roles) Info(name string, q *QueryOptions) (*structs.ACLRole, *QueryMeta, error) {
	if err := checkID("role name", name); err != nil {
		return nil, nil, err
	}
	var out structs.ACLRole
	meta, err := r.c.query("/v1/role/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Put creates the role, or replaces the one of that name.
func (r *Roles) Put(role *structs.ACLRole) error {
	if err := checkID("role name", role.Name); err != nil {
		return err
	}
	return r.c.write(http.MethodPut, "/v1/role/"+esc(role.Name), role, nil)
}

// Delete deletes a role.
func (r *Roles) Delete(name string) error {
	if err := checkID("role name", name); err != nil {
		return err
	}
	return r.c.write(http.MethodDelete, "/v1/role/"+esc(name), nil, nil)
}

// Bindings manages bindings, which give a role to subjects.
type Bindings struct{ c *Client }

// Bindings returns the binding endpoints.
func (a *ACL) Bindings() *Bindings { return &Bindings{a.c} }

// List returns every binding.
func (b *Bindings) List(q *QueryOptions) ([]structs.ACLBinding, *QueryMeta, error) {
	var out []structs.ACLBinding
	meta, err := b.c.query("/v1/bindings", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one binding.
func (b *Bindings) Info(name string, q *QueryOptions) (*structs.ACLBinding, *QueryMeta, error) {
	if err := checkID("binding name", name); err != nil {
		return nil, nil, err
	}
	var out structs.ACLBinding
	meta, err := b.c.query("/v1/binding/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Put creates the binding, or replaces the one of that name.
func (b *Bindings) Put(binding *structs.ACLBinding) error {
	if err := checkID("binding name", binding.Name); err != nil {
		return err
	}
	return b.c.write(http.MethodPut, "/v1/binding/"+esc(binding.Name), binding, nil)
}

// Delete deletes a binding.
func (b *Bindings) Delete(name string) error {
	if err := checkID("binding name", name); err != nil {
		return err
	}
	return b.c.write(http.MethodDelete, "/v1/binding/"+esc(name), nil, nil)
}

// Tokens manages API tokens (not join tokens; see JoinTokens).
type Tokens struct{ c *Client }

// Tokens returns the API token endpoints.
func (a *ACL) Tokens() *Tokens { return &Tokens{a.c} }

// List returns the tokens the caller may see, without secrets; with
// subject set, only that subject's.
func (t *Tokens) List(subject string, q *QueryOptions) ([]structs.TokenInfo, *QueryMeta, error) {
	path := "/v1/tokens"
	if subject != "" {
		path += "?" + url.Values{"subject": {subject}}.Encode()
	}
	var out []structs.TokenInfo
	meta, err := t.c.query(path, q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Create makes an API token. The answer holds its secret, which the server
// never shows again.
func (t *Tokens) Create(req structs.TokenCreateRequest) (*structs.TokenSecret, error) {
	var out structs.TokenSecret
	if err := t.c.write(http.MethodPost, "/v1/tokens", &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes the token with the given accessor ID.
func (t *Tokens) Revoke(accessor string) error {
	if err := checkID("token accessor ID", accessor); err != nil {
		return err
	}
	return t.c.write(http.MethodDelete, "/v1/token/"+esc(accessor), nil, nil)
}

// ServiceAccounts manages service accounts, the identities of workloads
// and automation.
type ServiceAccounts struct{ c *Client }

// ServiceAccounts returns the service account endpoints.
func (a *ACL) ServiceAccounts() *ServiceAccounts { return &ServiceAccounts{a.c} }

// List returns the service accounts of namespace, or of every namespace
// when it is "".
func (s *ServiceAccounts) List(namespace string, q *QueryOptions) ([]structs.ServiceAccount, *QueryMeta, error) {
	path := "/v1/serviceaccounts"
	if namespace != "" {
		path += "?" + url.Values{"namespace": {namespace}}.Encode()
	}
	var out []structs.ServiceAccount
	meta, err := s.c.query(path, q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

func saPath(namespace, name string) (string, error) {
	if err := checkID("service account namespace", namespace); err != nil {
		return "", err
	}
	if err := checkID("service account name", name); err != nil {
		return "", err
	}
	return "/v1/serviceaccount/" + esc(namespace) + "/" + esc(name), nil
}

// Create creates a service account.
func (s *ServiceAccounts) Create(namespace, name string, req structs.ServiceAccountRequest) (*structs.ServiceAccount, error) {
	path, err := saPath(namespace, name)
	if err != nil {
		return nil, err
	}
	var out structs.ServiceAccount
	if err := s.c.write(http.MethodPut, path, &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a service account; its tokens stop working.
func (s *ServiceAccounts) Delete(namespace, name string) error {
	path, err := saPath(namespace, name)
	if err != nil {
		return err
	}
	return s.c.write(http.MethodDelete, path, nil, nil)
}

// Token issues a token for a service account; with req.RotateGrace set the
// account's earlier tokens stop working that long from now.
func (s *ServiceAccounts) Token(namespace, name string, req structs.ServiceAccountTokenRequest) (*structs.TokenSecret, error) {
	path, err := saPath(namespace, name)
	if err != nil {
		return nil, err
	}
	var out structs.TokenSecret
	if err := s.c.write(http.MethodPost, path+"/token", &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
