// Package api is the Go client for Hive's HTTPS API: what the hive CLI, the
// worker agent and users' scripts talk to a manager through.
//
// Every request goes over TLS verified against the cluster CA with the server
// name ManagerServerName; users authenticate with a bearer token, nodes with
// their client certificate. A non-2xx answer comes back as an *Error.
package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hivesec/hive/structs"
)

// ManagerServerName is the DNS name every manager's API certificate carries;
// clients verify it instead of the address they dialled, so any manager
// reachable by IP is accepted as long as the cluster CA signed it.
const ManagerServerName = "manager.hive.internal"

// Environment variables read by DefaultConfig.
const (
	EnvAddress = "HIVE_ADDR"
	EnvToken   = "HIVE_TOKEN"
	EnvCACert  = "HIVE_CACERT"
)

// DefaultAddress is used when HIVE_ADDR is unset.
const DefaultAddress = "https://127.0.0.1:7400"

// DefaultTimeout bounds one request; blocking queries get their wait time on
// top of it.
const DefaultTimeout = 60 * time.Second

// IndexHeader carries the state index a read was answered at.
const IndexHeader = "X-Hive-Index"

// maxJSONBody bounds a decoded JSON answer so a broken server cannot make the
// client allocate without limit; maxErrorBody does the same for error text.
const (
	maxJSONBody  = 64 << 20
	maxErrorBody = 64 << 10
)

// Config says where the API is and how to authenticate to it.
type Config struct {
	// Address is the API's base URL, such as https://10.0.0.1:7400.
	// "host:port" and "host" are accepted and mean https on that port or 7400.
	Address string
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// CACertFile is a PEM file with the cluster CA; CACertPEM, when set, is
	// used instead. One of them is required: the client trusts nothing else.
	CACertFile string
	CACertPEM  []byte
	// ClientCert is presented to the server (nodes authenticate with it).
	ClientCert *tls.Certificate
	// Timeout bounds each request, plus the wait time of a blocking query.
	// Snapshot transfers are not bounded, as their size is not. Zero means
	// no limit.
	Timeout time.Duration
}

// DefaultConfig reads HIVE_ADDR (default https://127.0.0.1:7400), HIVE_TOKEN
// and HIVE_CACERT from the environment. An address it cannot make sense of is
// kept as given, so that NewClient reports it.
func DefaultConfig() *Config {
	c := &Config{
		Address:    DefaultAddress,
		Token:      strings.TrimSpace(os.Getenv(EnvToken)),
		CACertFile: strings.TrimSpace(os.Getenv(EnvCACert)),
		Timeout:    DefaultTimeout,
	}
	if a := strings.TrimSpace(os.Getenv(EnvAddress)); a != "" {
		c.Address = a
		if n, err := NormalizeAddress(a); err == nil {
			c.Address = n
		}
	}
	return c
}

// NormalizeAddress turns "host", "host:port" or "https://host[:port]" into
// "https://host:port", with port 7400 when none is given. Anything but https
// is refused: the API is served over TLS only.
func NormalizeAddress(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("empty API address: set --address or HIVE_ADDR to a manager, such as https://10.0.0.1:7400")
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("invalid API address %q: %w", addr, err)
		}
		if u.Scheme != "https" {
			return "", fmt.Errorf("invalid API address %q: the Hive API is served over HTTPS only, use https://%s", addr, u.Host)
		}
		if u.Host == "" || u.Hostname() == "" {
			return "", fmt.Errorf("invalid API address %q: no host; use https://HOST:7400", addr)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			return "", fmt.Errorf("invalid API address %q: give only scheme, host and port, such as https://%s", addr, u.Host)
		}
		port := u.Port()
		if port == "" {
			port = strconv.Itoa(structs.DefaultAPIPort)
		} else if err := checkPort(port); err != nil {
			return "", fmt.Errorf("invalid API address %q: %w", addr, err)
		}
		return "https://" + net.JoinHostPort(u.Hostname(), port), nil
	}
	if strings.ContainsAny(addr, "/?#@ ") {
		return "", fmt.Errorf("invalid API address %q: use HOST, HOST:PORT or https://HOST:PORT", addr)
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if host == "" {
			return "", fmt.Errorf("invalid API address %q: no host; use HOST:PORT", addr)
		}
		if err := checkPort(port); err != nil {
			return "", fmt.Errorf("invalid API address %q: %w", addr, err)
		}
		return "https://" + net.JoinHostPort(host, port), nil
	}
	// A bare host: a name, an IPv4 address or an IPv6 address with or
	// without brackets.
	host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("invalid API address %q: use HOST, HOST:PORT or https://HOST:PORT", addr)
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(structs.DefaultAPIPort)), nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// Client talks to one Hive API address. It is safe for concurrent use.
type Client struct {
	addr    string
	token   string
	timeout time.Duration
	http    *http.Client
}

// NewClient checks c and builds a client. The cluster CA is required.
func NewClient(c *Config) (*Client, error) {
	if c == nil {
		c = DefaultConfig()
	}
	addr, err := NormalizeAddress(c.Address)
	if err != nil {
		return nil, err
	}
	caPEM := c.CACertPEM
	if len(caPEM) == 0 {
		if c.CACertFile == "" {
			return nil, errors.New("no cluster CA certificate configured: set HIVE_CACERT or --ca-cert to the cluster CA file (on a manager it is <data-dir>/bootstrap/ca.pem)")
		}
		caPEM, err = os.ReadFile(c.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("reading cluster CA certificate (HIVE_CACERT or --ca-cert): %w", err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		src := "CACertPEM"
		if len(c.CACertPEM) == 0 {
			src = c.CACertFile
		}
		return nil, fmt.Errorf("no PEM certificate found in %s: point HIVE_CACERT or --ca-cert at the cluster CA (<data-dir>/bootstrap/ca.pem on a manager)", src)
	}
	tc := tlsConfig(pool)
	if c.ClientCert != nil {
		tc.Certificates = []tls.Certificate{*c.ClientCert}
	}
	return &Client{
		addr:    addr,
		token:   c.Token,
		timeout: c.Timeout,
		http:    &http.Client{Transport: transport(tc)},
	}, nil
}

// Address is the normalized API address the client talks to.
func (c *Client) Address() string { return c.addr }

// tlsConfig is the client side of the user API: TLS 1.2 or newer, AEAD
// suites only, the manager name verified against pool.
func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		RootCAs:    pool,
		ServerName: ManagerServerName,
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2 only; 1.3 suites are all AEAD
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

func transport(tc *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	return t
}

// QueryOptions tune a read.
type QueryOptions struct {
	// WaitIndex makes the read a blocking query: the server answers once its
	// state index passes WaitIndex, or when WaitTime is over.
	WaitIndex uint64
	// WaitTime bounds a blocking query; DefaultWaitTime when zero. The
	// client's timeout is extended by it.
	WaitTime time.Duration
	// Consistent sends the read to the leader instead of answering from the
	// contacted manager's possibly stale state.
	Consistent bool
}

// QueryMeta describes the answer to a read.
type QueryMeta struct {
	// LastIndex is the state index the answer reflects; pass it as WaitIndex
	// to wait for the next change.
	LastIndex uint64
}

// Error is a non-2xx answer from the API.
type Error struct {
	StatusCode int
	Code       string
	Message    string
}

// Error returns "<message> (HTTP <status>)".
func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// DefaultWaitTime is the wait sent with a blocking query that sets none, so
// the client knows how long the server may hold the request.
const DefaultWaitTime = 5 * time.Minute

// wait is the wait time to send: none unless the query blocks.
func (q *QueryOptions) wait() time.Duration {
	switch {
	case q == nil || q.WaitIndex == 0 && q.WaitTime <= 0:
		return 0
	case q.WaitTime <= 0:
		return DefaultWaitTime
	}
	return q.WaitTime
}

func (q *QueryOptions) encode() string {
	if q == nil {
		return ""
	}
	v := url.Values{}
	if q.WaitIndex > 0 {
		v.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	}
	if w := q.wait(); w > 0 {
		v.Set("wait", w.String())
	}
	s := v.Encode()
	if q.Consistent {
		if s != "" {
			s += "&"
		}
		s += "consistent"
	}
	return s
}

// request is one call to the API.
type request struct {
	method string
	path   string // under /v1, already escaped
	query  *QueryOptions
	body   io.Reader
	ctype  string
	// stream turns the timeout off: snapshot bodies may be large.
	stream bool
}

// send performs r and returns the response if its status is 2xx. The caller
// closes the body, which also releases the request's deadline.
func (c *Client) send(r request) (*http.Response, error) {
	u := c.addr + r.path
	if qs := r.query.encode(); qs != "" {
		// A path may carry its own filters (?node=...).
		sep := "?"
		if strings.Contains(r.path, "?") {
			sep = "&"
		}
		u += sep + qs
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if c.timeout > 0 && !r.stream {
		d := c.timeout
		// The server may add up to 1/16 of jitter to a blocking wait.
		w := r.query.wait()
		d += w + w/16
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, transportError(r.method, r.path, c.addr, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel()
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// transportError explains a failure to get any HTTP answer, with a hint at
// the setting that is most likely wrong.
func transportError(method, path, addr string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua) || errors.As(err, &ce) && !errors.As(err, &he):
		return fmt.Errorf("%s %s: the server at %s presented a certificate that does not verify against the configured cluster CA; check --ca-cert or HIVE_CACERT: %w", method, path, addr, err)
	case errors.As(err, &he):
		return fmt.Errorf("%s %s: the server at %s is not a Hive manager (its certificate is not valid for %s); check --address or HIVE_ADDR: %w", method, path, addr, ManagerServerName, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: no answer from %s in time; check that the manager is up or raise the timeout: %w", method, path, addr, err)
	}
	return fmt.Errorf("%s %s: cannot reach the Hive API at %s; check --address or HIVE_ADDR and that a manager is running: %w", method, path, addr, err)
}

// decodeError turns a non-2xx response into an *Error, using the JSON body
// when there is one and the raw text (or the status text) when not.
func decodeError(resp *http.Response) *Error {
	e := &Error{StatusCode: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body structs.ErrorResponse
	if err := json.Unmarshal(raw, &body); err == nil && body.Error != "" {
		e.Message, e.Code = body.Error, body.Code
		return e
	}
	e.Message = strings.TrimSpace(string(raw))
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	if e.Message == "" {
		e.Message = "unexpected status"
	}
	return e
}

// query GETs path and decodes the JSON answer into out.
func (c *Client) query(path string, q *QueryOptions, out any) (*QueryMeta, error) {
	resp, err := c.send(request{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	meta, err := parseMeta(resp)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if err := decodeBody(resp.Body, out); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return meta, nil
}

// write sends in as JSON (when not nil) and decodes the answer into out
// (when not nil).
func (c *Client) write(method, path string, in, out any) error {
	r := request{method: method, path: path}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encoding request: %w", method, path, err)
		}
		r.body, r.ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := decodeBody(resp.Body, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

func parseMeta(resp *http.Response) (*QueryMeta, error) {
	m := &QueryMeta{}
	h := resp.Header.Get(IndexHeader)
	if h == "" {
		return m, nil
	}
	n, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("server sent an invalid %s header %q; is the server a Hive manager of the same version? %w", IndexHeader, h, err)
	}
	m.LastIndex = n
	return m, nil
}

func decodeBody(r io.Reader, out any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxJSONBody))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decoding the server's answer: %w", err)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// checkID refuses an empty identifier, which would otherwise turn a call on
// one object into a call on the collection.
func checkID(kind, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("empty %s: give the %s to act on", kind, kind)
	}
	return nil
}
