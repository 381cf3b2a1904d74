package client

import (
	"context"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// Heartbeat timing. The managers say the TTL; the agent beats three times
// per TTL so one lost beat does not make the node unknown.
const (
	minHeartbeat     = 500 * time.Millisecond
	defaultHeartbeat = 10 * time.Second
)

// registerAndHeartbeat fingerprints and registers the node, then
// heartbeats every TTL/3 until ctx ends. Failures are retried with backoff
// across the known managers; a manager that refuses a heartbeat (it lost
// the registration) makes the agent register again.
func (a *Agent) registerAndHeartbeat(ctx context.Context) {
	registered := false
	period := defaultHeartbeat / 3
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		var resp *structs.HeartbeatResponse
		var err error
		if !registered {
			resp, err = a.register(ctx)
		} else {
			err = a.withManagerCtx(ctx, func(c *api.Client) error {
				var err error
				resp, err = c.NodeAgent().Heartbeat(ctx)
				return err
			})
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if registered && isClientError(err) {
				registered = false
			}
			a.logger.Warn("heartbeat failed; retrying", "registered", registered, "error", err, "in", backoff)
			sleepCtx(ctx, jitter(backoff))
			// Never back off past the beat period: the TTL is running.
			backoff = min(2*backoff, max(period, time.Second))
			continue
		}
		if !registered {
			registered = true
			a.logger.Info("registered with the cluster", "ttl", resp.TTL)
		}
		backoff = 500 * time.Millisecond
		if resp.TTL > 0 {
			period = max(resp.TTL/3, minHeartbeat)
		}
		sleepCtx(ctx, period)
	}
}

// register sends the node's fingerprint.
func (a *Agent) register(ctx context.Context) (*structs.HeartbeatResponse, error) {
	facts, err := readHostFacts("/")
	if err != nil {
		a.logger.Warn("fingerprint incomplete", "error", err)
	}
	attrs, res := fingerprint(facts)
	req := &structs.NodeRegisterRequest{Attributes: attrs, Resources: res, Labels: a.cfg.Labels}
	if a.net != nil {
		req.WireGuardKey, req.WireGuardPort = a.net.publicKey(), a.net.port
	}
	var resp *structs.HeartbeatResponse
	err = a.withManagerCtx(ctx, func(c *api.Client) error {
		var err error
		resp, err = c.NodeAgent().Register(ctx, req)
		return err
	})
	return resp, err
}
