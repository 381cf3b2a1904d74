package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/structs"
)

// JoinParams describe the node that asks to join.
type JoinParams struct {
	DataDir  string
	Addr     string // any manager's API address
	Token    string
	Name     string
	Address  string
	APIPort  int
	RPCPort  int
	SerfPort int
	// NodeID is kept when a known node rejoins (for example after its
	// certificate expired while it was offline).
	NodeID string
}

// Join admits this node to a cluster: it fetches the CA, refuses it unless it
// matches the token's pin, then sends a CSR with the token secret over TLS
// pinned to that CA. On success the identity and certificates are on disk.
func Join(ctx context.Context, p JoinParams) (*Node, *Certs, *structs.JoinResponse, error) {
	tok, err := pki.ParseJoinToken(p.Token)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM, err := api.FetchCA(ctx, p.Addr)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("join: CA from %s: %w", p.Addr, err)
	}
	// Nothing but the CA fetch happens before this check: a node must not
	// send its token secret to a server it cannot trust.
	if err := pki.CheckPin(tok.Pin, ca.Raw); err != nil {
		return nil, nil, nil, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err := pki.NewCSR(key, p.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	resp, err := api.Join(ctx, p.Addr, caPEM, &structs.JoinRequest{
		Token: p.Token, CSRPEM: string(csr), NodeID: p.NodeID, Name: p.Name,
		Address: p.Address, APIPort: p.APIPort, RPCPort: p.RPCPort, SerfPort: p.SerfPort,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if resp.CACertPEM != string(caPEM) {
		return nil, nil, nil, fmt.Errorf("join: the manager answered with a different CA than the one pinned; refusing")
	}
	cert, err := pki.ParseCertPEM([]byte(resp.CertPEM))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("join: certificate from the manager: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, nil, fmt.Errorf("join: the manager's certificate for this node does not chain to the pinned CA: %w", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	certs, err := SaveCerts(p.DataDir, []byte(resp.CertPEM), keyPEM, caPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	n := &Node{
		ID: resp.NodeID, Role: resp.Role, ClusterID: resp.ClusterID, Name: p.Name,
		Address: p.Address, APIPort: p.APIPort, RPCPort: p.RPCPort, SerfPort: p.SerfPort,
		Managers: resp.Managers,
	}
	if err := n.Save(p.DataDir); err != nil {
		return nil, nil, nil, err
	}
	return n, certs, resp, nil
}

// Renewer renews the node certificate at a random point between 50% and 80%
// of its life, authenticated by the current certificate. Spreading renewals
// keeps a cluster that joined at once from renewing at once.
type Renewer struct {
	Certs  *Certs
	Logger hclog.Logger
	// Renew sends the CSR to a manager and returns the new certificate PEM.
	Renew func(ctx context.Context, csrPEM []byte) ([]byte, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run renews until ctx ends. A failed renewal is retried with backoff.
func (r *Renewer) Run(ctx context.Context) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	backoff := time.Second
	for {
		leaf := r.Certs.Leaf()
		wait := time.Until(pki.RenewAt(leaf.NotBefore, leaf.NotAfter, nil))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := r.RenewOnce(ctx); err != nil {
			r.Logger.Warn("certificate renewal failed; will retry", "error", err, "expires", leaf.NotAfter, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)))):
			}
			backoff = min(backoff*2, 5*time.Minute)
			continue
		}
		backoff = time.Second
		r.Logger.Info("certificate renewed", "serial", pki.SerialHex(r.Certs.Leaf()), "expires", r.Certs.Leaf().NotAfter, "now", now())
	}
}

// RenewOnce renews the certificate now.
func (r *Renewer) RenewOnce(ctx context.Context) error {
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, r.Certs.Leaf().Subject.CommonName)
	if err != nil {
		return err
	}
	certPEM, err := r.Renew(ctx, csr)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: r.Certs.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("renewed certificate does not chain to the cluster CA: %w", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	return r.Certs.Update(certPEM, keyPEM)
}
