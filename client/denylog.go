package client

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/hivesec/hive/netenforce/nflog"
	"github.com/hivesec/hive/netenforce/nft"
	"github.com/hivesec/hive/structs"
)

// denyFlushEvery is how often denied flows seen on the node are reported:
// the kernel already rate-limits logging, and the agent folds repeats of a
// flow in one period into one report with a count.
const denyFlushEvery = 5 * time.Second

// maxDeniedPerFlush bounds the distinct flows one report carries.
const maxDeniedPerFlush = 100

type deniedKey struct {
	dir, policies string
	audit         bool
	flow          nflog.Flow
}

// runDenyLog reads the flows network policy denies on this node (NFLOG
// group nft.LogGroup) and reports them every denyFlushEvery.
func (d *dataplane) runDenyLog(ctx context.Context) {
	var r *nflog.Reader
	for {
		var err error
		if r, err = nflog.Open(nft.LogGroup, -1); err == nil {
			break
		}
		d.log.Warn("cannot read denied flows; retrying", "error", err)
		if !sleepCtx(ctx, 10*time.Second) {
			return
		}
	}
	go func() {
		<-ctx.Done()
		_ = r.Close()
	}()
	packets := make(chan []nflog.Packet, 16)
	go func() {
		defer close(packets)
		for {
			ps, err := r.Read()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("reading denied flows stopped", "error", err)
				}
				return
			}
			select {
			case packets <- ps:
			default: // a burst beyond what we report anyway
			}
		}
	}()
	seen := map[deniedKey]int{}
	tick := time.NewTicker(denyFlushEvery)
	defer tick.Stop()
	for {
		select {
		case ps, ok := <-packets:
			if !ok {
				return
			}
			for _, p := range ps {
				f, ok := p.Flow()
				if !ok {
					continue
				}
				src, ok := d.applier.DropSource(p.Prefix)
				if !ok {
					continue
				}
				k := deniedKey{dir: src.Direction, policies: strings.Join(src.Policies, ","), audit: src.Audit, flow: f}
				if _, have := seen[k]; have || len(seen) < maxDeniedPerFlush {
					seen[k]++
				}
			}
		case <-tick.C:
			if len(seen) > 0 {
				d.reportDenied(seen)
				seen = map[deniedKey]int{}
			}
		case <-ctx.Done():
			return
		}
	}
}

// reportDenied logs the period's denied flows and hands them to the
// managers as security events.
func (d *dataplane) reportDenied(seen map[deniedKey]int) {
	out := make([]structs.DeniedFlow, 0, len(seen))
	for k, n := range seen {
		f := structs.DeniedFlow{Direction: k.dir, Policies: strings.Split(k.policies, ","), Src: k.flow.Src.String(), Dst: k.flow.Dst.String(),
			Protocol: k.flow.Protocol, Port: k.flow.Port, Packets: n, Audit: k.audit}
		out = append(out, f)
		msg := "network policy denied a flow"
		if f.Audit {
			msg = "audit-mode network policy would deny a flow (it passed)"
		}
		d.log.Warn(msg, "src", f.Src, "dst", f.Dst, "protocol", f.Protocol, "port", f.Port,
			"direction", f.Direction, "policies", f.Policies, "packets", n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Src+out[i].Dst < out[j].Src+out[j].Dst })
	if d.onDenied != nil {
		d.onDenied(out)
	}
}
