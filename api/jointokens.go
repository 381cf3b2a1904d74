package api

import (
	"fmt"
	"net/http"

	"github.com/hivesec/hive/structs"
)

// JoinTokens manages the tokens nodes join the cluster with.
type JoinTokens struct{ c *Client }

// JoinTokens returns the join token endpoints.
func (c *Client) JoinTokens() *JoinTokens { return &JoinTokens{c} }

// List returns every join token, without secrets.
func (j *JoinTokens) List(q *QueryOptions) ([]structs.JoinTokenPublic, *QueryMeta, error) {
	var out []structs.JoinTokenPublic
	meta, err := j.c.query("/v1/join-tokens", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Create makes a join token. The answer holds its secret, which the server
// never shows again.
func (j *JoinTokens) Create(req structs.JoinTokenCreateRequest) (*structs.JoinTokenCreateResponse, error) {
	if !req.Role.Valid() {
		return nil, fmt.Errorf("invalid role %q: use %s or %s", req.Role, structs.RoleWorker, structs.RoleManager)
	}
	var out structs.JoinTokenCreateResponse
	if err := j.c.write(http.MethodPost, "/v1/join-tokens", &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes the join token with the given ID.
func (j *JoinTokens) Revoke(id string) error {
	if err := checkID("join token ID", id); err != nil {
		return err
	}
	return j.c.write(http.MethodDelete, "/v1/join-token/"+esc(id), nil, nil)
}

// Rotate replaces the default join token of role; the answer's Old field is
// the token it replaced.
func (j *JoinTokens) Rotate(role structs.Role) (*structs.JoinTokenCreateResponse, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("invalid role %q: use %s or %s", role, structs.RoleWorker, structs.RoleManager)
	}
	var out structs.JoinTokenCreateResponse
	if err := j.c.write(http.MethodPost, "/v1/join-tokens/rotate/"+esc(string(role)), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
