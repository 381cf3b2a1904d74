package structs

import "time"

// API bodies for identity and authorization: users, groups, roles,
// bindings, tokens and service accounts. Roles and bindings travel as
// ACLRole and ACLBinding themselves.

// API token kinds (ACLToken.Kind). A token's kind is also the <kind> part
// of its secret, so a leaked one says what it was.
const (
	// TokenKindSession is issued by a password login; it always expires.
	TokenKindSession = "session"
	// TokenKindAPI is created with `hive token create`: it acts as its
	// creator, or with a role, only with that role.
	TokenKindAPI = "api"
	// TokenKindServiceAccount authenticates a service account.
	TokenKindServiceAccount = "sa"
)

// DefaultSessionTTL is how long a login lasts unless asked otherwise;
// MaxSessionTTL bounds what may be asked.
const (
	DefaultSessionTTL = 12 * time.Hour
	MaxSessionTTL     = 7 * 24 * time.Hour
)

// LoginRequest is a password login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// TTL is a Go duration; empty means DefaultSessionTTL.
	TTL string `json:"ttl,omitempty"`
}

// TokenSecret is a newly created token: the only answer that ever carries
// its secret.
type TokenSecret struct {
	Secret string    `json:"secret"`
	Token  TokenInfo `json:"token"`
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	AccessorID string    `json:"accessor_id"`
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`
	Subject    string    `json:"subject"`
	Role       string    `json:"role,omitempty"`
	Namespace  string    `json:"namespace,omitempty"`
	CreatedBy  string    `json:"created_by,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitempty"`
}

// TokenCreateRequest creates an API token. Without Role the token acts as
// its creator; with Role it holds only that role (globally, or in
// Namespace), which its creator must hold too.
type TokenCreateRequest struct {
	Name      string `json:"name,omitempty"`
	TTL       string `json:"ttl,omitempty"` // Go duration; empty: no expiry
	Role      string `json:"role,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// WhoAmI says who the caller is.
type WhoAmI struct {
	Subject  string   `json:"subject"`
	Subjects []string `json:"subjects"`
	// Token is the token the call was made with, if any.
	Token *TokenInfo `json:"token,omitempty"`
	Node  string     `json:"node,omitempty"`
}

// UserRequest creates a user. With Role, the user is also bound to that
// role (globally, or in Namespace) in the same write, by a binding named
// "user-<name>-<role>[-<namespace>]": the bootstrap token works for one
// user creation only, so the first administrator must get its role in
// that same call.
type UserRequest struct {
	Password  string `json:"password"`
	Role      string `json:"role,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// PasswordRequest changes a password. A user changing its own password
// gives the old one; an administrator does not.
type PasswordRequest struct {
	OldPassword string `json:"old_password,omitempty"`
	Password    string `json:"password"`
}

// UserInfo describes a user (never its password hash).
type UserInfo struct {
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// GroupRequest creates a group.
type GroupRequest struct {
	Members []string `json:"members,omitempty"`
}

// GroupMembersRequest adds and removes members of a group.
type GroupMembersRequest struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// ServiceAccountRequest creates a service account.
type ServiceAccountRequest struct {
	Description string `json:"description,omitempty"`
}

// ServiceAccountTokenRequest issues a token for a service account. With
// RotateGrace set, the account's earlier tokens stop working that long
// from now (rotation); otherwise they are left alone.
type ServiceAccountTokenRequest struct {
	Name        string `json:"name,omitempty"`
	TTL         string `json:"ttl,omitempty"`
	RotateGrace string `json:"rotate_grace,omitempty"`
}

// CanIResponse answers `hive auth can-i`.
type CanIResponse struct {
	Allowed   bool   `json:"allowed"`
	Subject   string `json:"subject"`
	Resource  string `json:"resource"`
	Action    string `json:"action"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Role, Binding and Rule say what allowed it.
	Role    string `json:"role,omitempty"`
	Binding string `json:"binding,omitempty"`
	Rule    string `json:"rule,omitempty"`
}

// Permission is one thing a subject may do, for `hive auth can-i --list`.
type Permission struct {
	Resource string   `json:"resource"`
	Actions  []string `json:"actions"`
	Scope    string   `json:"scope"`
	Role     string   `json:"role"`
	Binding  string   `json:"binding"`
}

// PermissionsResponse lists what a subject may do.
type PermissionsResponse struct {
	Subject     string       `json:"subject"`
	Permissions []Permission `json:"permissions"`
}

// ResetAdminResponse is the answer of the local admin reset: the new
// bootstrap token and how many management tokens were revoked.
type ResetAdminResponse struct {
	Secret  string `json:"secret"`
	Revoked int    `json:"revoked"`
}

// SubjectTokenPrefix names a token that holds a role of its own
// ("token:<accessor>"); such subjects exist only inside the authorizer.
const SubjectTokenPrefix = "token:"
