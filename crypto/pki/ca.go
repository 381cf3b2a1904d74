// Package pki is Hive's cluster certificate authority: it creates and loads the
// CA, signs short-lived node certificates, formats and checks join tokens, and
// builds the TLS configurations for the internal RPC port and the user API.
//
// It does no I/O beyond reading randomness, so the server and the joining node
// share the same checks and every failure can be tested as a table.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// caLifetime is long because rotating a CA means re-joining or re-trusting
// every node; node certificates are what stays short-lived.
const caLifetime = 10 * 365 * 24 * time.Hour

// clockSkew backdates NotBefore so a peer whose clock is slightly behind
// still accepts a certificate issued a moment ago.
const clockSkew = time.Minute

// pinEncoding is the alphabet of CA pins: upper-case so a pin read aloud or
// typed from a screen is unambiguous, unpadded so it has no '=' to escape.
var pinEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// PinLength is the length of a CA pin: base32 of a 32-byte SHA-256 digest.
const PinLength = 52

// CA is the cluster certificate authority. Key must never be written anywhere
// except sealed by the keyring.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     *ecdsa.PrivateKey
}

// NewCA creates a self-signed ECDSA P-256 CA for clusterID, valid for ten
// years from now.
func NewCA(clusterID string, now time.Time) (*CA, error) {
	if clusterID == "" {
		return nil, errors.New("pki: cannot create CA: cluster ID is empty")
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Hive Cluster CA " + clusterID},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// The CA signs only leaf certificates; forbidding intermediates means
		// a stolen node key can never mint identities.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot parse the CA certificate just created: %w", err)
	}
	return &CA{Cert: cert, CertPEM: encodePEM("CERTIFICATE", der), Key: key}, nil
}

// LoadCA rebuilds a CA from its PEM certificate and PKCS#8 DER private key,
// refusing a key that does not belong to the certificate so a mixed-up
// keystore fails at start-up rather than at the first signature check.
func LoadCA(certPEM, keyDER []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot load CA: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("pki: cannot load CA: the certificate is not a CA certificate (basic constraints CA=false)")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot load CA: private key is not PKCS#8 DER: %w", err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: cannot load CA: private key is %T, expected an ECDSA key", parsed)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("pki: cannot load CA: private key does not match the CA certificate; check that the key and certificate come from the same cluster")
	}
	return &CA{Cert: cert, CertPEM: encodePEM("CERTIFICATE", cert.Raw), Key: key}, nil
}

// KeyDER returns the CA private key as PKCS#8 DER, ready to be sealed.
func (ca *CA) KeyDER() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot encode CA private key: %w", err)
	}
	return der, nil
}

// Pin returns the fingerprint of the CA certificate that join tokens carry.
func (ca *CA) Pin() string { return Fingerprint(ca.Cert.Raw) }

// Pool returns a fresh pool holding only this CA, so no system root is ever
// trusted for cluster traffic.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Fingerprint returns the SHA-256 of a DER certificate as 52 upper-case
// base32 characters (RFC 4648 standard alphabet, no padding).
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return pinEncoding.EncodeToString(sum[:])
}

// ParseCertPEM parses the first PEM block of pemBytes as an X.509 certificate.
func ParseCertPEM(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("pki: no PEM block found; expected -----BEGIN CERTIFICATE-----")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: PEM block is %q, expected \"CERTIFICATE\"", block.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot parse certificate: %w", err)
	}
	return cert, nil
}

// NewKey generates an ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot generate P-256 key: %w", err)
	}
	return k, nil
}

// EncodeKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodeKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot encode private key: %w", err)
	}
	return encodePEM("PRIVATE KEY", der), nil
}

// DecodeKeyPEM decodes a PKCS#8 "PRIVATE KEY" PEM block holding a P-256 key,
// the only kind Hive creates.
func DecodeKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("pki: no PEM block found; expected -----BEGIN PRIVATE KEY-----")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: PEM block is %q, expected \"PRIVATE KEY\" (PKCS#8)", block.Type)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot parse PKCS#8 private key: %w", err)
	}
	k, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("pki: private key is %T, expected an ECDSA P-256 key", parsed)
	}
	return k, nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// randomSerial returns a positive random serial of up to 128 bits; RFC 5280
// requires it positive, and randomness keeps serials unguessable.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: cannot generate certificate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
