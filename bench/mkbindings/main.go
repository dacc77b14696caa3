// Command mkbindings writes a bindings file for a benchmark nfdump file:
// the N most common local endpoints of its flows (on the addresses the
// synthetic fixtures' host owns), each a listener (TCP) or unconnected
// socket (UDP) of one of a few hundred processes, bound for the whole
// file. bench/enrich.sh uses it to time enrichment with a realistic index.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

func main() {
	n := flag.Int("n", 10000, "number of bindings")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkbindings [-n N] FILE.nf OUT.json")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *n); err != nil {
		fmt.Fprintln(os.Stderr, "mkbindings:", err)
		os.Exit(1)
	}
}

// localAddrs are the addresses of the fixtures' local host (nfgen).
var localAddrs = []string{"192.0.2.10", "10.20.0.5", "127.0.0.1", "2001:db8:10::5", "fd00:20::5", "::1"}

type endpoint struct {
	proto uint8
	ap    netip.AddrPort
}

func run(in, out string, n int) error {
	local := map[netip.Addr]bool{}
	for _, a := range localAddrs {
		local[netip.MustParseAddr(a)] = true
	}
	r, err := nfcap.OpenFile(in, nfcap.ReaderOptions{})
	if err != nil {
		return err
	}
	defer r.Close()
	counts := map[endpoint]int{}
	for f, err := range r.Flows() {
		if err != nil {
			return err
		}
		if f.Proto != nfcap.ProtoTCP && f.Proto != nfcap.ProtoUDP {
			continue
		}
		if local[f.SrcAddr] {
			counts[endpoint{f.Proto, netip.AddrPortFrom(f.SrcAddr, f.SrcPort)}]++
		}
		if local[f.DstAddr] {
			counts[endpoint{f.Proto, netip.AddrPortFrom(f.DstAddr, f.DstPort)}]++
		}
	}
	eps := make([]endpoint, 0, len(counts))
	for e := range counts {
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b endpoint) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return a.ap.Compare(b.ap)
	})
	if len(eps) > n {
		eps = eps[:n]
	}
	from := r.Appendix().Stat.First().Add(-time.Hour)
	h := tracker.HostHistory{Host: "bench-host"}
	for _, a := range localAddrs {
		h.Addrs = append(h.Addrs, tracker.AddrInterval{Addr: netip.MustParseAddr(a), From: from})
	}
	procs := make([]*tracker.Process, 300)
	for i := range procs {
		procs[i] = &tracker.Process{PID: int32(1000 + i), StartTime: from, Name: fmt.Sprintf("proc-%03d", i),
			Comm: fmt.Sprintf("proc-%03d", i), Exe: fmt.Sprintf("/usr/bin/proc-%03d", i), User: "root"}
	}
	for i, e := range eps {
		st := tracker.StateListen
		if e.proto == nfcap.ProtoUDP {
			st = tracker.StateUnconn
		}
		h.Bindings = append(h.Bindings, tracker.Binding{
			Socket: tracker.Socket{Proto: tracker.Proto(e.proto), Local: e.ap, State: st},
			Owner:  procs[i%len(procs)], From: from,
		})
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := tracker.WriteFile(f, []tracker.HostHistory{h}); err != nil {
		f.Close()
		return err
	}
	fmt.Fprintf(os.Stderr, "mkbindings: %d bindings (of %d local endpoints) in %s\n", len(eps), len(counts), out)
	return f.Close()
}
