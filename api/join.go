package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hivesec/hive/structs"
)

// FetchCA asks the manager at addr for the cluster CA certificate (PEM).
//
// It cannot verify the server, which is why it exists: it connects with
// certificate verification turned OFF, so the answer may come from anyone.
// The caller MUST compare the returned certificate with the pin in its join
// token (pki.Fingerprint of the DER) before trusting it or sending anything
// else, and then talk to the cluster only over TLS pinned to it, as Join
// does. FetchCA does check that the server's own certificate chains to the
// CA it serves, so a mismatch is caught early, but that proves nothing on
// its own.
func FetchCA(ctx context.Context, addr string) ([]byte, error) {
	base, err := NormalizeAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	tc := tlsConfig(nil)
	tc.InsecureSkipVerify = true // the caller checks the pin; see above
	hc := &http.Client{Transport: transport(tc)}
	defer hc.CloseIdleConnections()

	const path = "/v1/join/ca"
	resp, err := doJoin(ctx, hc, http.MethodGet, base, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out structs.CAResponse
	if err := decodeBody(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("join: GET %s: %w", path, err)
	}
	caPEM := []byte(out.CACertPEM)
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("join: the server at %s sent an unusable CA certificate: %w", base, err)
	}
	if err := verifyPeer(resp.TLS, pool); err != nil {
		return nil, fmt.Errorf("join: the server at %s presents a certificate its own CA did not sign for %s; it is not a manager of that cluster: %w", base, ManagerServerName, err)
	}
	return caPEM, nil
}

// Join asks the manager at addr to admit a node. The TLS session trusts only
// caPEM, which the caller has checked against its token's pin; no bearer
// token is sent, the join token in req authenticates.
func Join(ctx context.Context, addr string, caPEM []byte, req *structs.JoinRequest) (*structs.JoinResponse, error) {
	if req == nil {
		return nil, errors.New("join: no join request given")
	}
	base, err := NormalizeAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("join: cluster CA: %w", err)
	}
	hc := &http.Client{Transport: transport(tlsConfig(pool))}
	defer hc.CloseIdleConnections()

	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("join: encoding request: %w", err)
	}
	const path = "/v1/join"
	resp, err := doJoin(ctx, hc, http.MethodPost, base, path, b)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out structs.JoinResponse
	if err := decodeBody(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("join: POST %s: %w", path, err)
	}
	return &out, nil
}

func doJoin(ctx context.Context, hc *http.Client, method, base, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, r)
	if err != nil {
		return nil, fmt.Errorf("join: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join: %w", transportError(method, path, base, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, fmt.Errorf("join: %s %s: %w", method, path, decodeError(resp))
	}
	return resp, nil
}

// caPool parses caPEM, which must hold exactly one CA certificate.
func caPool(caPEM []byte) (*x509.CertPool, error) {
	block, rest := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block; expected only the cluster CA certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("the certificate is not a CA certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

func verifyPeer(cs *tls.ConnectionState, roots *x509.CertPool) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errors.New("no TLS peer certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       ManagerServerName,
	})
	return err
}
