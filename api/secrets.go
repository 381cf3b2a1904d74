package api

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/hivesec/hive/structs"
)

// Secrets creates, versions, reveals and deletes secrets. Every call but
// List works in one namespace; an empty namespace means
// structs.DefaultNamespace. Only Value returns secret values; everything
// else carries metadata (names, keys, versions) alone.
type Secrets struct{ c *Client }

// Secrets returns the secret endpoints.
func (c *Client) Secrets() *Secrets { return &Secrets{c} }

// secretPath is /v1/secret/<name><suffix>?namespace=<ns>[&extra...].
func secretPath(ns, name, suffix string, extra url.Values) (string, error) {
	if err := checkID("secret name", name); err != nil {
		return "", err
	}
	v := url.Values{}
	for k, vs := range extra {
		v[k] = vs
	}
	v.Set("namespace", nsOrDefault(ns))
	return "/v1/secret/" + esc(name) + suffix + "?" + v.Encode(), nil
}

// List returns the secrets of namespace ns, or of every namespace when ns
// is empty (which takes a global grant of secret:list).
func (s *Secrets) List(ns string, q *QueryOptions) ([]structs.SecretInfo, *QueryMeta, error) {
	path := "/v1/secrets"
	if ns != "" {
		path += "?" + url.Values{"namespace": {ns}}.Encode()
	}
	var out []structs.SecretInfo
	meta, err := s.c.query(path, q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns a secret's metadata and its kept versions.
func (s *Secrets) Info(ns, name string, q *QueryOptions) (*structs.SecretInfo, *QueryMeta, error) {
	path, err := secretPath(ns, name, "", nil)
	if err != nil {
		return nil, nil, err
	}
	var out structs.SecretInfo
	meta, err := s.c.query(path, q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Create creates a secret with its first version; the server answers 409
// if it exists.
func (s *Secrets) Create(ns, name string, req structs.SecretRequest) (*structs.SecretInfo, error) {
	return s.put(http.MethodPost, ns, name, req)
}

// Update adds a version to a secret. The version holds exactly the keys
// req gives (literal or generated): keys it leaves out are not carried
// over from the previous version.
func (s *Secrets) Update(ns, name string, req structs.SecretRequest) (*structs.SecretInfo, error) {
	return s.put(http.MethodPut, ns, name, req)
}

func (s *Secrets) put(method, ns, name string, req structs.SecretRequest) (*structs.SecretInfo, error) {
	path, err := secretPath(ns, name, "", nil)
	if err != nil {
		return nil, err
	}
	var out structs.SecretInfo
	if err := s.c.write(method, path, &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a secret with all its versions.
func (s *Secrets) Delete(ns, name string) error {
	path, err := secretPath(ns, name, "", nil)
	if err != nil {
		return err
	}
	return s.c.write(http.MethodDelete, path, nil, nil)
}

// Value reveals the values of a version: the current one when version is
// 0. It needs secret/value:read, and every call is audited.
func (s *Secrets) Value(ns, name string, version uint64) (*structs.SecretValue, error) {
	var extra url.Values
	if version > 0 {
		extra = url.Values{"version": {strconv.FormatUint(version, 10)}}
	}
	path, err := secretPath(ns, name, "/value", extra)
	if err != nil {
		return nil, err
	}
	var out structs.SecretValue
	if _, err := s.c.query(path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollback makes version to current again, as a new version holding its
// values.
func (s *Secrets) Rollback(ns, name string, to uint64) (*structs.SecretInfo, error) {
	path, err := secretPath(ns, name, "/rollback", nil)
	if err != nil {
		return nil, err
	}
	var out structs.SecretInfo
	if err := s.c.write(http.MethodPost, path, &structs.SecretRollbackRequest{To: to}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
