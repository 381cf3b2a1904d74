package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/hivesec/hive/structs"
)

// ManagerServerName is the TLS server name clients verify: every manager
// certificate carries it, so clients need not know a manager's address.
const ManagerServerName = "manager.hive.internal"

// apiCipherSuites are the TLS 1.2 suites the user API accepts: ECDHE for
// forward secrecy and AEAD only. TLS 1.3 suites are not configurable and all
// qualify. RSA variants are kept for an operator-supplied RSA API cert.
var apiCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// InternalServerTLS is the configuration of the internal RPC port: TLS 1.3
// only, and every peer must present a node certificate from caPool. verify,
// if not nil, sees the peer's verified leaf on every handshake, resumed ones
// included, so a revoked node is refused as soon as it is on the deny list.
func InternalServerTLS(caPool *x509.CertPool, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), verify func(*x509.Certificate) error) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      caPool,
		GetCertificate: getCert,
		VerifyConnection: verifyNode(func(_ *x509.Certificate, _ string, _ structs.Role, err error) error {
			// Only nodes speak the internal protocol; a certificate from the
			// same CA without a node identity (a future user cert) is refused.
			if err != nil {
				return fmt.Errorf("internal tls: peer is not a node: %w", err)
			}
			return nil
		}, verify),
	}
}

// InternalClientTLS is the configuration a node uses to reach a manager: TLS
// 1.3 only, the server must hold a manager certificate from caPool, then
// verify, if not nil, sees its leaf.
func InternalClientTLS(caPool *x509.CertPool, getClientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error), verify func(*x509.Certificate) error) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              caPool,
		ServerName:           ManagerServerName,
		GetClientCertificate: getClientCert,
		VerifyConnection: verifyNode(func(leaf *x509.Certificate, _ string, role structs.Role, err error) error {
			// The DNS name check already ties the cert to manager.hive.internal;
			// checking the signed identity too means a worker cert can never
			// pose as a manager even if SAN rules change.
			if err != nil {
				return fmt.Errorf("internal tls: server is not a node: %w", err)
			}
			if role != structs.RoleManager {
				return fmt.Errorf("internal tls: server certificate serial %s has role %q, expected %q", SerialHex(leaf), role, structs.RoleManager)
			}
			return nil
		}, verify),
	}
}

// APIServerTLS is the configuration of the user API: TLS 1.2+ with AEAD
// ECDHE suites, and client certificates optional (users may authenticate
// with tokens). A presented certificate must chain to caPool and passes
// through verify, if not nil.
func APIServerTLS(caPool *x509.CertPool, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), verify func(*x509.Certificate) error) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   apiCipherSuites,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      caPool,
		GetCertificate: getCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			leaf, err := verifiedLeaf(cs)
			if err != nil {
				return err
			}
			return runVerify(verify, leaf)
		},
	}
}

// APIClientTLS is the configuration the CLI uses to reach the user API,
// trusting only caPool and presenting clientCert if not nil.
func APIClientTLS(caPool *x509.CertPool, clientCert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    caPool,
		ServerName: ManagerServerName,
	}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	return cfg
}

// verifyNode builds the VerifyConnection of the node-to-node configs: the
// verified leaf's node identity goes to check (which decides who may speak),
// then the leaf goes to verify (the caller's deny list).
func verifyNode(check func(leaf *x509.Certificate, id string, role structs.Role, err error) error, verify func(*x509.Certificate) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		leaf, err := verifiedLeaf(cs)
		if err != nil {
			return err
		}
		id, role, err := Identity(leaf)
		if err := check(leaf, id, role, err); err != nil {
			return err
		}
		return runVerify(verify, leaf)
	}
}

// verifiedLeaf returns the peer leaf from the chain crypto/tls verified, never
// the raw PeerCertificates, so verify only ever sees a trusted certificate.
func verifiedLeaf(cs tls.ConnectionState) (*x509.Certificate, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil, errors.New("tls: peer presented no verified certificate")
	}
	return cs.VerifiedChains[0][0], nil
}

func runVerify(verify func(*x509.Certificate) error, leaf *x509.Certificate) error {
	if verify == nil {
		return nil
	}
	if err := verify(leaf); err != nil {
		return fmt.Errorf("tls: peer certificate serial %s refused: %w", SerialHex(leaf), err)
	}
	return nil
}

// WorkerServerName is the TLS server name every worker certificate carries.
const WorkerServerName = "worker.hive.internal"

// NodeServerTLS is the configuration of a worker's own endpoint (logs,
// image import): TLS 1.3, and only managers from caPool may call it; verify,
// if not nil, sees the manager's leaf on every handshake.
func NodeServerTLS(caPool *x509.CertPool, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), verify func(*x509.Certificate) error) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      caPool,
		GetCertificate: getCert,
		VerifyConnection: verifyNode(func(_ *x509.Certificate, _ string, role structs.Role, err error) error {
			if err != nil || role != structs.RoleManager {
				return fmt.Errorf("worker tls: only managers may call a worker (peer role %q): %v", role, err)
			}
			return nil
		}, verify),
	}
}

// WorkerClientTLS is the configuration a manager uses to call the worker
// nodeID: TLS 1.3, and the server must hold that worker's certificate, so a
// manager cannot be pointed at another node by a stale address.
func WorkerClientTLS(caPool *x509.CertPool, getClientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error), nodeID string, verify func(*x509.Certificate) error) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              caPool,
		ServerName:           WorkerServerName,
		GetClientCertificate: getClientCert,
		VerifyConnection: verifyNode(func(_ *x509.Certificate, id string, role structs.Role, err error) error {
			if err != nil {
				return fmt.Errorf("worker tls: server is not a node: %w", err)
			}
			if role != structs.RoleWorker || id != nodeID {
				return fmt.Errorf("worker tls: expected worker %s, server certificate names %s %s", nodeID, role, id)
			}
			return nil
		}, verify),
	}
}
