// Command remoteload puts a remote.Server under load in this process: N
// concurrent event streams plus /v1/bindings queries at a steady rate,
// while a fake tracker publishes events. It reports the latency of
// /v1/bindings (p50, p99, max) and the goroutines and heap before, during
// and after the clients, to show that nothing grows once they leave.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

type scanner struct {
	mu   sync.Mutex
	snap tracker.Snapshot
}

func (s *scanner) Scan(context.Context) (*tracker.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.snap
	c.Sockets = slices.Clone(c.Sockets)
	c.Time = time.Now()
	return &c, nil
}

func main() {
	streams := flag.Int("streams", 200, "concurrent event streams")
	rate := flag.Int("rate", 50, "/v1/bindings queries per second")
	bindings := flag.Int("bindings", 1000, "bindings in the tracker's view")
	churn := flag.Int("churn", 20, "sockets replaced per scan (events: twice that)")
	dur := flag.Duration("duration", 20*time.Second, "load duration")
	flag.Parse()
	if err := run(*streams, *rate, *bindings, *churn, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "remoteload:", err)
		os.Exit(1)
	}
}

func socks(n, gen, churn int) []tracker.Observed {
	p := &tracker.Process{PID: 100, Name: "loadd", User: "root", StartTime: time.Unix(1700000000, 0)}
	out := make([]tracker.Observed, 0, n)
	for i := range n {
		id := i
		if i < churn {
			id = n + gen*churn + i // these change every scan
		}
		out = append(out, tracker.Observed{Socket: tracker.Socket{Proto: tracker.ProtoTCP,
			Local: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(id >> 16), byte(id >> 8), byte(id)}), 8080),
			State: tracker.StateListen, Inode: uint64(1 + id)}, Owner: p})
	}
	return out
}

type mem struct {
	goroutines int
	heap       uint64
}

func measure() mem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{runtime.NumGoroutine(), ms.HeapInuse}
}

func run(nStreams, rate, nBindings, churn int, dur time.Duration) error {
	sc := &scanner{}
	sc.snap.Addrs = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	sc.snap.Sockets = socks(nBindings, 0, churn)
	dir, err := os.MkdirTemp("", "remoteload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tr, err := tracker.New(tracker.Options{Scanner: sc, StateDir: dir, Host: "load", Interval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := tr.ScanOnce(context.Background()); err != nil {
		return err
	}
	srv, err := remote.NewServer(remote.ServerOptions{Source: tr, Token: "load-token", MaxStreams: nStreams + 10})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	trCtx, stopTracker := context.WithCancel(ctx)
	defer stopTracker()
	trDone := make(chan struct{})
	go func() {
		defer close(trDone)
		gen := 0
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-trCtx.Done():
				return
			case <-t.C:
			}
			gen++
			sc.mu.Lock()
			sc.snap.Sockets = socks(nBindings, gen, churn)
			sc.mu.Unlock()
			tr.ScanOnce(trCtx)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	before := measure()

	loadCtx, stopLoad := context.WithTimeout(ctx, dur)
	defer stopLoad()
	var wg sync.WaitGroup
	var events, streamErrs atomic.Int64
	for range nStreams {
		wg.Go(func() {
			c, err := remote.NewClient(url, remote.ClientOptions{Token: "load-token"})
			if err != nil {
				streamErrs.Add(1)
				return
			}
			defer c.CloseIdleConnections()
			st, err := c.Events(loadCtx, tr.Current().Seq)
			if err != nil {
				streamErrs.Add(1)
				return
			}
			defer st.Close()
			for {
				if _, err := st.Next(); err != nil {
					if loadCtx.Err() == nil {
						streamErrs.Add(1)
					}
					return
				}
				events.Add(1)
			}
		})
	}
	qc, err := remote.NewClient(url, remote.ClientOptions{Token: "load-token"})
	if err != nil {
		return err
	}
	var lat []time.Duration
	var qErrs int
	tick := time.NewTicker(time.Second / time.Duration(rate))
	var during mem
	mid := time.Now().Add(dur / 2)
loop:
	for {
		select {
		case <-loadCtx.Done():
			break loop
		case <-tick.C:
		}
		start := time.Now()
		v, err := qc.Bindings(loadCtx)
		d := time.Since(start)
		if err != nil {
			if loadCtx.Err() != nil {
				break
			}
			qErrs++
			continue
		}
		if len(v.Bindings) != nBindings {
			qErrs++
		}
		lat = append(lat, d)
		if during.goroutines == 0 && time.Now().After(mid) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			during = mem{runtime.NumGoroutine(), ms.HeapInuse}
		}
	}
	tick.Stop()
	wg.Wait()
	qc.CloseIdleConnections()
	time.Sleep(500 * time.Millisecond) // let the server's handlers see the clients leave
	after := measure()
	stopTracker()
	<-trDone
	stop()
	<-served

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("streams %d, /v1/bindings at %d/s with %d bindings, %d events/scan every 100ms, %v\n", nStreams, rate, nBindings, 2*churn, dur)
	fmt.Printf("events received: %d (%.0f/s across streams), stream errors: %d\n", events.Load(), float64(events.Load())/dur.Seconds(), streamErrs.Load())
	fmt.Printf("/v1/bindings: %d queries, %d errors, p50 %v, p99 %v, max %v\n", len(lat), qErrs, pct(0.50), pct(0.99), pct(1))
	fmt.Printf("goroutines: before %d, during %d, after %d\n", before.goroutines, during.goroutines, after.goroutines)
	fmt.Printf("heap in use: before %.1f MiB, during %.1f MiB, after %.1f MiB\n", mib(before.heap), mib(during.heap), mib(after.heap))
	if after.goroutines > before.goroutines+5 {
		return fmt.Errorf("goroutines grew from %d to %d after the clients left", before.goroutines, after.goroutines)
	}
	if streamErrs.Load() > 0 || qErrs > 0 {
		return fmt.Errorf("%d stream errors, %d query errors", streamErrs.Load(), qErrs)
	}
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
