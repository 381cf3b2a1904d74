package client

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hivesec/hive/api"
)

// managerTimeout bounds one call to a manager (a blocking query adds its
// wait).
const managerTimeout = 10 * time.Second

// cachedClient is an API client for one manager, valid while the node
// certificate it presents is the current one (renewal swaps it).
type cachedClient struct {
	cert *tls.Certificate
	c    *api.Client
}

// client returns a client for the manager at addr with the current
// certificate, reusing connections until the certificate changes.
func (a *Agent) client(addr string) (*api.Client, error) {
	cert := a.certs.Current()
	a.clientsMu.Lock()
	defer a.clientsMu.Unlock()
	if cc, ok := a.clients[addr]; ok && cc.cert == cert {
		return cc.c, nil
	}
	c, err := api.NewClient(&api.Config{Address: addr, CACertPEM: a.certs.CAPEM, ClientCert: cert, Timeout: managerTimeout})
	if err != nil {
		return nil, err
	}
	a.clients[addr] = cachedClient{cert: cert, c: c}
	return c, nil
}

// withManager calls fn with a client for each known manager until one
// answers without a transport error.
func (a *Agent) withManager(fn func(*api.Client) error) error {
	return a.withManagerCtx(context.Background(), fn)
}

// withManagerCtx is withManager that gives up when ctx ends. It starts at
// a random manager so that workers spread over the managers.
func (a *Agent) withManagerCtx(ctx context.Context, fn func(*api.Client) error) error {
	ms := a.node.Managers
	if len(ms) == 0 {
		return errors.New("no managers known; rejoin with a join token")
	}
	first := rand.IntN(len(ms))
	var last error
	for i := range ms {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := a.client(ms[(first+i)%len(ms)].APIAddr)
		if err != nil {
			return err
		}
		err = fn(c)
		var apiErr *api.Error
		if err == nil || errors.As(err, &apiErr) {
			return err
		}
		last = err
	}
	return last
}

// sleepCtx waits d or until ctx ends; it reports whether the wait was
// complete.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns d plus up to a quarter more, so that many workers that
// lost their manager do not come back in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/4+1)
}
