package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hivesec/hive/structs"
)

// DefaultCertLifetime is the lifetime of a node certificate. It is short so a
// removed node loses access within days even if the deny list were lost.
const DefaultCertLifetime = 7 * 24 * time.Hour

// identityScheme and identityHost form the URI SAN hive://node/<role>/<id>
// that carries a node's identity; the CN is informational only.
const (
	identityScheme = "hive"
	identityHost   = "node"
)

// nodeIDRE limits node IDs to characters that need no escaping in a URI path
// segment or a DNS-ish context, so the identity parses back unchanged.
var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewCSR returns a PEM certificate signing request for key. name is only a
// hint for operators reading the CSR: SignCSR ignores the CSR's subject.
func NewCSR(key *ecdsa.PrivateKey, name string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot create certificate request: %w", err)
	}
	return encodePEM("CERTIFICATE REQUEST", der), nil
}

// SignCSR checks the CSR signature and signs a certificate for the node. The
// CA decides the identity: the CSR's own subject and SANs are ignored, so a
// joining node cannot ask for another node's name or role.
//
// The certificate has URI SAN hive://node/<role>/<nodeID>, CN nodeID, DNS
// SANs "localhost" and "<role>.hive.internal", IP SANs ips plus 127.0.0.1 and
// ::1, both server and client auth, and is valid from now-1m to now+lifetime.
// A lifetime of 0 means DefaultCertLifetime. Only P-256 keys are accepted.
func (ca *CA) SignCSR(csrPEM []byte, nodeID string, role structs.Role, ips []net.IP, lifetime time.Duration, now time.Time) (certPEM []byte, cert *x509.Certificate, err error) {
	if !nodeIDRE.MatchString(nodeID) {
		return nil, nil, fmt.Errorf("pki: cannot sign certificate: node ID %q is invalid; use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", nodeID)
	}
	if !role.Valid() {
		return nil, nil, fmt.Errorf("pki: cannot sign certificate: unknown role %q; expected %q or %q", role, structs.RoleManager, structs.RoleWorker)
	}
	if lifetime == 0 {
		lifetime = DefaultCertLifetime
	}
	if lifetime < 0 {
		return nil, nil, fmt.Errorf("pki: cannot sign certificate: lifetime %s is negative", lifetime)
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("pki: cannot sign certificate: it would expire %s, after the cluster CA (%s); rotate the CA or use a shorter lifetime",
			notAfter.UTC().Format(time.RFC3339), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("pki: cannot sign certificate: CSR key is %T, expected ECDSA P-256 (create it with pki.NewKey)", csr.PublicKey)
	}

	ipSANs, err := nodeIPs(ips)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost", string(role) + ".hive.internal"},
		IPAddresses:  ipSANs,
		URIs:         []*url.URL{identityURI(nodeID, role)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cannot sign certificate for node %s: %w", nodeID, err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cannot parse the certificate just signed: %w", err)
	}
	return encodePEM("CERTIFICATE", der), cert, nil
}

func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, errors.New("pki: cannot sign certificate: no PEM block found; expected -----BEGIN CERTIFICATE REQUEST-----")
	}
	if block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("pki: cannot sign certificate: PEM block is %q, expected \"CERTIFICATE REQUEST\"", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot sign certificate: malformed CSR: %w", err)
	}
	// The signature proves the requester holds the private key; without this
	// check anyone could get a certificate for someone else's public key.
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: cannot sign certificate: CSR signature is invalid: %w", err)
	}
	return csr, nil
}

// nodeIPs validates ips and appends the loopback addresses, without
// duplicates, so local tools can reach a node on 127.0.0.1 or ::1.
func nodeIPs(ips []net.IP) ([]net.IP, error) {
	out := make([]net.IP, 0, len(ips)+2)
	seen := make(map[string]bool)
	add := func(ip net.IP) {
		if !seen[string(ip.To16())] {
			seen[string(ip.To16())] = true
			out = append(out, ip)
		}
	}
	for i, ip := range ips {
		if ip.To16() == nil {
			return nil, fmt.Errorf("pki: cannot sign certificate: IP address #%d is not a valid IPv4 or IPv6 address", i+1)
		}
		add(ip)
	}
	add(net.IPv4(127, 0, 0, 1).To4())
	add(net.IPv6loopback)
	return out, nil
}

func identityURI(nodeID string, role structs.Role) *url.URL {
	return &url.URL{Scheme: identityScheme, Host: identityHost, Path: "/" + string(role) + "/" + nodeID}
}

// Identity returns the node ID and role carried in cert's hive://node URI SAN.
// It is the only source of a peer's identity: the CN and DNS names are not
// trusted for authorization.
func Identity(cert *x509.Certificate) (nodeID string, role structs.Role, err error) {
	if cert == nil {
		return "", "", errors.New("pki: no certificate given")
	}
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != identityScheme {
			continue
		}
		if found != nil {
			return "", "", fmt.Errorf("pki: certificate serial %s carries more than one hive:// identity", SerialHex(cert))
		}
		found = u
	}
	if found == nil {
		return "", "", fmt.Errorf("pki: certificate serial %s has no hive://node/<role>/<id> URI SAN; it was not issued by a Hive CA for a node", SerialHex(cert))
	}
	if found.Host != identityHost || found.User != nil || found.RawQuery != "" || found.Fragment != "" || found.Opaque != "" {
		return "", "", fmt.Errorf("pki: certificate identity %q is malformed; expected hive://node/<role>/<id>", found.String())
	}
	parts := strings.Split(strings.TrimPrefix(found.Path, "/"), "/")
	if len(parts) != 2 || !strings.HasPrefix(found.Path, "/") {
		return "", "", fmt.Errorf("pki: certificate identity %q is malformed; expected hive://node/<role>/<id>", found.String())
	}
	role = structs.Role(parts[0])
	if !role.Valid() {
		return "", "", fmt.Errorf("pki: certificate identity %q has unknown role %q; expected %q or %q", found.String(), parts[0], structs.RoleManager, structs.RoleWorker)
	}
	if !nodeIDRE.MatchString(parts[1]) {
		return "", "", fmt.Errorf("pki: certificate identity %q has an invalid node ID", found.String())
	}
	return parts[1], role, nil
}

// SerialHex returns the certificate serial as lower-case hex, the form
// stored in structs.Node.CertSerial and in the deny list.
func SerialHex(cert *x509.Certificate) string {
	if cert == nil || cert.SerialNumber == nil {
		return ""
	}
	return cert.SerialNumber.Text(16)
}

// RenewAt picks a random instant between 50% and 80% of [notBefore,
// notAfter]. The jitter spreads renewals of nodes that joined together, and
// renewing well before expiry leaves time to retry through a leader outage.
// r may be nil to use the global generator; tests pass a seeded one.
func RenewAt(notBefore, notAfter time.Time, r *mrand.Rand) time.Time {
	total := notAfter.Sub(notBefore)
	if total <= 0 {
		// Nothing sensible to wait for: renew now.
		return notBefore
	}
	window := total/10*3 + 1 // exclusive bound of Int64N; never zero
	var jitter int64
	if r == nil {
		jitter = mrand.Int64N(int64(window))
	} else {
		jitter = r.Int64N(int64(window))
	}
	return notBefore.Add(total/2 + time.Duration(jitter))
}
