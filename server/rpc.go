package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/structs"
)

// The first byte a node writes after the TLS handshake on the RPC port picks
// the protocol; one port then carries Raft and node-to-node HTTP.
const (
	rpcRaft byte = 'R'
	rpcHTTP byte = 'H'
)

// rpcMux accepts mTLS connections on the RPC port and hands each to Raft or
// to the internal HTTP server.
type rpcMux struct {
	ln        net.Listener
	serverTLS *tls.Config
	raft      *chanListener
	http      *chanListener
	logger    interface {
		Debug(string, ...any)
		Warn(string, ...any)
	}
}

func (m *rpcMux) serve() {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logger.Warn("rpc accept failed", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go m.handle(conn)
	}
}

func (m *rpcMux) handle(conn net.Conn) {
	tc := tls.Server(conn, m.serverTLS)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		m.logger.Debug("rpc handshake refused", "remote", conn.RemoteAddr(), "error", err)
		conn.Close()
		return
	}
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		conn.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	switch b[0] {
	case rpcRaft:
		// Raft is for managers only: a worker certificate from the same CA
		// must never be able to vote or append entries.
		if _, role, err := pki.Identity(tc.ConnectionState().PeerCertificates[0]); err != nil || role != structs.RoleManager {
			m.logger.Warn("rpc: refused raft stream from a non-manager", "remote", conn.RemoteAddr(), "role", role)
			conn.Close()
			return
		}
		m.raft.push(tc)
	case rpcHTTP:
		m.http.push(tc)
	default:
		m.logger.Warn("rpc: unknown protocol byte", "remote", conn.RemoteAddr(), "byte", b[0])
		conn.Close()
	}
}

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn, 16), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

// Accept waits for the next connection.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the advertised address.
func (l *chanListener) Addr() net.Addr { return l.addr }

// raftLayer is raft's StreamLayer over the mux: mutual TLS 1.3 both ways.
type raftLayer struct {
	*chanListener
	clientTLS *tls.Config
}

// Dial opens a Raft stream to another manager.
func (r *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialRPC(context.Background(), string(address), timeout, r.clientTLS, rpcRaft)
}

func dialRPC(ctx context.Context, addr string, timeout time.Duration, tc *tls.Config, proto byte) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial manager %s: %w", addr, err)
	}
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial manager %s: %w", addr, err)
	}
	return conn, nil
}
