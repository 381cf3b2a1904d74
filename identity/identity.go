// Package identity keeps a node's membership on disk: its ID and role, its
// mTLS key and certificate from the cluster CA, and the managers it knows.
// Managers and workers share it, so joining, resuming and certificate
// renewal behave the same on both.
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/structs"
)

// File names under the data dir.
const (
	NodeFile = "node.json"
	TLSDir   = "tls"
	CertFile = "node.crt"
	KeyFile  = "node.key"
	CAFile   = "ca.pem"
)

// Node is what a node remembers about itself across restarts.
type Node struct {
	ID        string              `json:"id"`
	Role      structs.Role        `json:"role"`
	ClusterID string              `json:"cluster_id"`
	Name      string              `json:"name"`
	Address   string              `json:"address"`
	APIPort   int                 `json:"api_port"`
	RPCPort   int                 `json:"rpc_port"`
	SerfPort  int                 `json:"serf_port"`
	Managers  []structs.PeerAddrs `json:"managers"`
}

// APIAddr is the node's API address.
func (n *Node) APIAddr() string { return net.JoinHostPort(n.Address, strconv.Itoa(n.APIPort)) }

// RPCAddr is the node's Raft and RPC address.
func (n *Node) RPCAddr() string { return net.JoinHostPort(n.Address, strconv.Itoa(n.RPCPort)) }

// SerfAddr is the node's gossip address.
func (n *Node) SerfAddr() string { return net.JoinHostPort(n.Address, strconv.Itoa(n.SerfPort)) }

// ErrNoIdentity means the data dir holds no node yet.
var ErrNoIdentity = errors.New("no node identity in data dir")

// Load reads dataDir/node.json.
func Load(dataDir string) (*Node, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, NodeFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoIdentity
	}
	if err != nil {
		return nil, fmt.Errorf("read node identity: %w", err)
	}
	var n Node
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("parse %s: %w (the file is damaged; restore it or rejoin with a fresh data dir)", filepath.Join(dataDir, NodeFile), err)
	}
	if n.ID == "" || !n.Role.Valid() {
		return nil, fmt.Errorf("%s has no node ID or role; rejoin with a fresh data dir", filepath.Join(dataDir, NodeFile))
	}
	return &n, nil
}

// Save writes dataDir/node.json atomically.
func (n *Node) Save(dataDir string) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("encode node identity: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dataDir, NodeFile), b, 0o600)
}

// WriteFileAtomic writes through a temporary file and a rename, so a crash
// leaves the old or the new content, never half.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Certs holds the node's current certificate and the cluster CA. The
// certificate is swapped in place on renewal; TLS configs read it through
// the Get* callbacks, so live listeners pick up the new one.
type Certs struct {
	dir   string
	CAPEM []byte
	CA    *x509.Certificate
	Pool  *x509.CertPool

	mu   sync.RWMutex
	cert *tls.Certificate
}

// LoadCerts reads the node's TLS files from dataDir/tls.
func LoadCerts(dataDir string) (*Certs, error) {
	dir := filepath.Join(dataDir, TLSDir)
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA in %s: %w", dir, err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &Certs{dir: dir, CAPEM: caPEM, CA: ca, Pool: pool, cert: &pair}, nil
}

// SaveCerts writes the node's TLS files and returns them loaded.
func SaveCerts(dataDir string, certPEM, keyPEM, caPEM []byte) (*Certs, error) {
	dir := filepath.Join(dataDir, TLSDir)
	if err := WriteFileAtomic(filepath.Join(dir, CAFile), caPEM, 0o644); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return LoadCerts(dataDir)
}

// Update replaces the certificate and key on disk and in memory.
func (c *Certs) Update(certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("new certificate does not match its key: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(c.dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(c.dir, CertFile), certPEM, 0o644); err != nil {
		return err
	}
	c.mu.Lock()
	c.cert = &pair
	c.mu.Unlock()
	return nil
}

// Current returns the current certificate.
func (c *Certs) Current() *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert
}

// Leaf returns the parsed current certificate.
func (c *Certs) Leaf() *x509.Certificate { return c.Current().Leaf }

// Expired reports whether the certificate is no longer valid at now.
func (c *Certs) Expired(now time.Time) bool { return !now.Before(c.Leaf().NotAfter) }

// GetCertificate serves the current certificate to TLS clients.
func (c *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Current(), nil
}

// GetClientCertificate presents the current certificate to TLS servers.
func (c *Certs) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.Current(), nil
}
