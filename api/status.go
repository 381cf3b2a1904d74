package api

import "github.com/hivesec/hive/structs"

// Status reads cluster status.
type Status struct{ c *Client }

// Status returns the status endpoints.
func (c *Client) Status() *Status { return &Status{c} }

// Leader returns the current Raft leader.
func (s *Status) Leader() (*structs.LeaderResponse, error) {
	var out structs.LeaderResponse
	if _, err := s.c.query("/v1/status/leader", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
