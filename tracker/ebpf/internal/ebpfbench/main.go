// Command ebpfbench measures what the eBPF source costs. bench/ebpf-overhead.sh
// drives it; every mode prints one line of key=value results.
//
//	ebpfbench attach -duration D [-bpfstats=false] [-nosendmsg]
//	                                   open the source, consume events for D (or
//	                                   until SIGINT/SIGTERM), then report events,
//	                                   drops, this process's CPU time and the
//	                                   kernel run time of the nd_* programs
//	ebpfbench tcp-rr -duration D [-rate N] [-workers W]
//	                                   short TCP connections on loopback (connect,
//	                                   1-byte request and reply, close); -rate 0
//	                                   runs flat out
//	ebpfbench tcp-stream -duration D   one bulk TCP stream on loopback
//	ebpfbench udp -duration D          unconnected sendto(2) of 64-byte datagrams
//
// Load modes report their own CPU time (user+system, which on loopback
// includes most of the kernel's network processing) per operation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cebpf "github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netdumper/netdumper/tracker/ebpf"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ebpfbench attach|tcp-rr|tcp-stream|udp [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	duration := fs.Duration("duration", 5*time.Second, "how long to run")
	rate := fs.Int("rate", 0, "tcp-rr: connections per second (0: as fast as possible)")
	workers := fs.Int("workers", 2, "tcp-rr: concurrent clients when not rate-limited")
	noSendmsg := fs.Bool("nosendmsg", false, "attach: leave out cgroup/sendmsg4|6 (Options.NoSendmsgHook)")
	bpfStats := fs.Bool("bpfstats", true, "attach: measure the programs' kernel run time (adds ~20-40 ns to every BPF program run)")
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	var err error
	switch os.Args[1] {
	case "attach":
		err = attach(ctx, *bpfStats, *noSendmsg)
	case "tcp-rr":
		err = tcpRR(ctx, *rate, *workers)
	case "tcp-stream":
		err = tcpStream(ctx)
	case "udp":
		err = udp(ctx)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ebpfbench:", err)
		os.Exit(1)
	}
}

// cpuTime returns this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// attach runs the source until ctx is done.
func attach(ctx context.Context, bpfStats, noSendmsg bool) error {
	if bpfStats {
		statsOff, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			return fmt.Errorf("enabling BPF run-time statistics: %w", err)
		}
		defer statsOff.Close()
	}
	src, err := ebpf.Open(ebpf.Options{NoSendmsgHook: noSendmsg})
	if err != nil {
		return err
	}
	defer src.Close()
	runtime0, runs0, per0 := progRuntime()
	cpu0, t0 := cpuTime(), time.Now()
	fmt.Println("attached")
	var events atomic.Uint64
	if err := src.Run(ctx, func(ebpf.ConnEvent) { events.Add(1) }); err != nil && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	runtime1, runs1, per1 := progRuntime()
	st := src.Stats()
	kern := runtime1 - runtime0
	per := time.Duration(0)
	if n := events.Load(); n > 0 {
		per = (cpu + kern) / time.Duration(n)
	}
	fmt.Printf("mode=attach wall=%.1fs events=%d rate=%.0f/s user_cpu=%.1f%% bpf_runs=%d bpf_cpu=%.2f%% bpf_ns_per_run=%.0f cost_per_event_us=%.2f ringbuf_drops=%d kernel_drops=%d unowned=%d missed=%d lost=%d\n",
		wall.Seconds(), events.Load(), float64(events.Load())/wall.Seconds(),
		100*cpu.Seconds()/wall.Seconds(), runs1-runs0, 100*kern.Seconds()/wall.Seconds(),
		float64(kern.Nanoseconds())/float64(max(runs1-runs0, 1)), float64(per.Nanoseconds())/1000,
		st.RingbufDrops, st.KernelDrops, st.Unowned, st.Missed, st.Lost)
	if bpfStats {
		names := make([]string, 0, len(per1))
		for n := range per1 {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			runs := per1[n].runs - per0[n].runs
			rt := per1[n].runtime - per0[n].runtime
			fmt.Printf("  prog=%s runs=%d ns_per_run=%.0f cpu=%.3f%%\n", n, runs,
				float64(rt.Nanoseconds())/float64(max(runs, 1)), 100*rt.Seconds()/wall.Seconds())
		}
	}
	return nil
}

// progStat is one program's accumulated run time and count.
type progStat struct {
	runtime time.Duration
	runs    uint64
}

// progRuntime sums the run time and run count of the loaded nd_* programs
// (kernel.bpf_stats_enabled must be on), and returns them per program.
func progRuntime() (time.Duration, uint64, map[string]progStat) {
	var total time.Duration
	var runs uint64
	per := map[string]progStat{}
	id := cebpf.ProgramID(0)
	for range 100000 {
		next, err := cebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := cebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		if err == nil && strings.HasPrefix(info.Name, "nd_") {
			if st, err := p.Stats(); err == nil {
				total += st.Runtime
				runs += st.RunCount
				ps := per[info.Name]
				ps.runtime += st.Runtime
				ps.runs += st.RunCount
				per[info.Name] = ps
			}
		}
		p.Close()
	}
	return total, runs, per
}

// tcpRR makes short connections: connect, 1-byte request, 1-byte reply,
// close.
func tcpRR(ctx context.Context, rate, workers int) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Reply, then wait for the client to close first, so
				// TIME-WAIT stays on the client side (reused on loopback).
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					if _, err := c.Write(b[:]); err == nil {
						_, _ = io.Copy(io.Discard, c)
					}
				}
				c.Close()
			}()
		}
	}()
	addr := ln.Addr().String()
	one := func() error {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		var b [1]byte
		if _, err := c.Write([]byte{'x'}); err != nil {
			return err
		}
		_, err = io.ReadFull(c, b[:])
		return err
	}

	var done, failed atomic.Uint64
	cpu0, t0 := cpuTime(), time.Now()
	if rate > 0 {
		interval := time.Second / time.Duration(rate)
		next := time.Now()
		for ctx.Err() == nil {
			if err := one(); err != nil {
				failed.Add(1)
			} else {
				done.Add(1)
			}
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					if err := one(); err != nil {
						failed.Add(1)
					} else {
						done.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	n := done.Load()
	fmt.Printf("mode=tcp-rr wall=%.1fs conns=%d failed=%d rate=%.0f/s cpu=%.1f%% cpu_per_conn_us=%.1f\n",
		wall.Seconds(), n, failed.Load(), float64(n)/wall.Seconds(), 100*cpu.Seconds()/wall.Seconds(),
		float64(cpu.Microseconds())/float64(max(n, 1)))
	return nil
}

// tcpStream pushes bulk data through one loopback connection.
func tcpStream(ctx context.Context) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		received <- n
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return err
	}
	buf := make([]byte, 128<<10)
	cpu0, t0 := cpuTime(), time.Now()
	for ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	c.Close()
	n := <-received
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	fmt.Printf("mode=tcp-stream wall=%.1fs bytes=%d gbit_per_s=%.2f cpu=%.1f%%\n",
		wall.Seconds(), n, float64(n)*8/wall.Seconds()/1e9, 100*cpu.Seconds()/wall.Seconds())
	return nil
}

// udp sends 64-byte datagrams with sendto(2) from an unconnected socket to
// a loopback receiver that drains them.
func udp(ctx context.Context) error {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer rx.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := rx.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer tx.Close()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 64)
	var n uint64
	cpu0, t0 := cpuTime(), time.Now()
	for ctx.Err() == nil {
		for range 64 {
			if _, err := tx.WriteToUDPAddrPort(buf, dst); err == nil {
				n++
			}
		}
	}
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	fmt.Printf("mode=udp wall=%.1fs datagrams=%d rate=%.0f/s cpu=%.1f%% cpu_per_datagram_ns=%.0f\n",
		wall.Seconds(), n, float64(n)/wall.Seconds(), 100*cpu.Seconds()/wall.Seconds(),
		float64(cpu.Nanoseconds())/float64(max(n, 1)))
	return nil
}
