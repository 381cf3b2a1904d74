package wg

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// runInNetns runs f on a fresh OS thread switched into ns. Sockets, TUN
// devices and links created by f belong to ns and stay there whatever thread
// later uses them. The thread is never switched back: the goroutine exits
// still locked, so the runtime destroys the thread instead of reusing one
// whose namespace differs from the rest of the process.
func runInNetns(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// nsBind opens wireguard-go's UDP sockets inside the mesh's namespace.
// wireguard-go (re)opens its bind whenever the device goes up — which it
// does from its TUN event goroutine, on whatever thread that runs — and when
// the listen port changes; without this wrapper the sockets would land in
// the process's namespace, not the one hive-wg lives in.
//
// Because nsBind is not a *conn.StdNetBind, wireguard-go skips its sticky-
// socket route listener (which would otherwise watch the wrong namespace's
// routes); the cached source address is still learnt from received packets.
type nsBind struct {
	conn.Bind
	ns netns.NsHandle
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	nerr := runInNetns(b.ns, func() error {
		fns, actual, err = b.Bind.Open(port)
		return nil
	})
	if nerr != nil {
		return nil, 0, nerr
	}
	return fns, actual, err
}

// nsTun asks for the TUN's MTU from inside the mesh's namespace: wireguard-
// go looks it up by interface name through a fresh socket, from its event
// goroutine, which outside the namespace finds no such device.
type nsTun struct {
	tun.Device
	ns netns.NsHandle
}

func (t *nsTun) MTU() (mtu int, err error) {
	if nerr := runInNetns(t.ns, func() error {
		mtu, err = t.Device.MTU()
		return nil
	}); nerr != nil {
		return 0, nerr
	}
	return mtu, err
}
