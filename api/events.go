package api

import "github.com/hivesec/hive/structs"

// Events reads the cluster's event log.
type Events struct{ c *Client }

// Events returns the event endpoints.
func (c *Client) Events() *Events { return &Events{c} }

// List returns the recorded events, oldest first as the server keeps them.
func (e *Events) List(q *QueryOptions) ([]structs.Event, *QueryMeta, error) {
	var out []structs.Event
	meta, err := e.c.query("/v1/events", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}
