package api

import (
	"net/http"

	"github.com/hivesec/hive/structs"
)

// Namespaces manages namespaces.
type Namespaces struct{ c *Client }

// Namespaces returns the namespace endpoints.
func (c *Client) Namespaces() *Namespaces { return &Namespaces{c} }

// List returns every namespace.
func (n *Namespaces) List(q *QueryOptions) ([]structs.Namespace, *QueryMeta, error) {
	var out []structs.Namespace
	meta, err := n.c.query("/v1/namespaces", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one namespace.
func (n *Namespaces) Info(name string, q *QueryOptions) (*structs.Namespace, *QueryMeta, error) {
	if err := checkID("namespace name", name); err != nil {
		return nil, nil, err
	}
	var out structs.Namespace
	meta, err := n.c.query("/v1/namespace/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Create creates a namespace; the server answers 409 if it exists.
func (n *Namespaces) Create(req structs.NamespaceRequest) error {
	if err := checkID("namespace name", req.Name); err != nil {
		return err
	}
	return n.c.write(http.MethodPut, "/v1/namespace/"+esc(req.Name), &req, nil)
}

// Delete deletes a namespace.
func (n *Namespaces) Delete(name string) error {
	if err := checkID("namespace name", name); err != nil {
		return err
	}
	return n.c.write(http.MethodDelete, "/v1/namespace/"+esc(name), nil, nil)
}
