package wg

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// BenchmarkCrossNodeTCP measures one TCP stream from host A to host B over
// the plain underlay veth and over hive-wg (wireguard-go here), and reports
// both rates and their ratio. Each iteration sends benchBytes each way.
//
//	go test -run '^$' -bench CrossNodeTCP -benchtime 3x ./netenforce/wg/
func BenchmarkCrossNodeTCP(b *testing.B) {
	const benchBytes = 256 << 20
	p := newPair(b)
	plainAddr := net.JoinHostPort(underlayB, "7100")
	overlayAddr := net.JoinHostPort(overlayB, "7101")
	_, plainGot := listenIn(b, p.hB, plainAddr, false)
	_, overlayGot := listenIn(b, p.hB, overlayAddr, false)

	// Warm up: the first overlay packet waits for the handshake.
	sendStream(b, p.hA, overlayAddr, 1<<20, overlayGot)

	var plain, overlay time.Duration
	b.ResetTimer()
	for range b.N {
		plain += sendStream(b, p.hA, plainAddr, benchBytes, plainGot)
		overlay += sendStream(b, p.hA, overlayAddr, benchBytes, overlayGot)
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(benchBytes) * float64(b.N) * 8 / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(plain), "underlay-Mbit/s")
	b.ReportMetric(mbps(overlay), "overlay-Mbit/s")
	b.ReportMetric(mbps(overlay)/mbps(plain), "overlay/underlay")
}

// sendStream writes n bytes to addr from inside h and returns the time
// until the receiver has read them all.
func sendStream(b *testing.B, h netns.NsHandle, addr string, n int, got <-chan int64) time.Duration {
	b.Helper()
	buf := make([]byte, 256<<10)
	start := time.Now()
	c, err := dialIn(h, addr, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	for left := n; left > 0; left -= len(buf) {
		if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
			c.Close()
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case m := <-got:
		if m != int64(n) {
			b.Fatalf("receiver got %d bytes, want %d", m, n)
		}
	case <-time.After(2 * time.Minute):
		b.Fatal("receiver never finished")
	}
	d := time.Since(start)
	c.Close()
	return d
}
