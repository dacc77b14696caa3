// Command scanbench compares the tracker's system scanner with
// `ss -tunap` on the host's current sockets, side by side:
//
//   - ss -tunap: wall time of the command (process start included), the
//     median of -runs, interleaved with the cold scans so that both see
//     the same load;
//   - full scan (cold): NewSystemScanner then one Scan, timing the Scan;
//   - one-shot: this binary with -once (start, one cold scan, exit), to
//     compare like with like with ss;
//   - rescan (warm): a Scan with nothing changed since the previous one;
//   - CPU at a 1 s interval: user+system time of this process over
//     -interval-seconds of scans every second, as a share of one core.
//
// bench/tracker-scan.sh runs it beside bench/sockload.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

func main() {
	runs := flag.Int("runs", 15, "timed runs per measurement (medians are reported)")
	warmRuns := flag.Int("warm-runs", 100, "timed steady-state rescans")
	intervalSecs := flag.Int("interval-seconds", 10, "seconds of 1 s-interval scanning for the CPU figure (0 skips)")
	source := flag.String("source", tracker.SourceAuto, "socket source: auto, netlink or procfs")
	label := flag.String("label", "", "label printed in the first column")
	once := flag.Bool("once", false, "internal: one cold scan, then exit")
	flag.Parse()
	if *once {
		s, err := tracker.NewSystemScanner(tracker.ScanOptions{Source: *source})
		if err != nil {
			fail(err)
		}
		snap, err := s.Scan(context.Background())
		if err != nil {
			fail(err)
		}
		fmt.Println(len(snap.Sockets))
		return
	}
	if err := run(*label, *source, *runs, *warmRuns, *intervalSecs); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scanbench:", err)
	os.Exit(1)
}

func run(label, source string, runs, warmRuns, intervalSecs int) error {
	ctx := context.Background()
	ssPath, err := exec.LookPath("ss")
	if err != nil {
		return fmt.Errorf("ss(8) not found: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	timeCmd := func(name string, args ...string) (time.Duration, error) {
		c := exec.Command(name, args...)
		c.Stdout, c.Stderr = devnull, os.Stderr
		t0 := time.Now()
		err := c.Run()
		return time.Since(t0), err
	}

	var ssT, coldT, onceT []time.Duration
	var socks, owned int
	for range runs {
		d, err := timeCmd(ssPath, "-tunap")
		if err != nil {
			return fmt.Errorf("ss -tunap: %w", err)
		}
		ssT = append(ssT, d)

		s, err := tracker.NewSystemScanner(tracker.ScanOptions{Source: source})
		if err != nil {
			return err
		}
		t0 := time.Now()
		snap, err := s.Scan(ctx)
		coldT = append(coldT, time.Since(t0))
		s.Close()
		if err != nil {
			return err
		}
		socks, owned = len(snap.Sockets), 0
		for _, o := range snap.Sockets {
			if o.Owner != nil {
				owned++
			}
		}

		if d, err = timeCmd(self, "-once", "-source", source); err != nil {
			return fmt.Errorf("one-shot scan: %w", err)
		}
		onceT = append(onceT, d)
	}
	ssLines, ssUsers, err := ssCounts(ssPath)
	if err != nil {
		return err
	}

	s, err := tracker.NewSystemScanner(tracker.ScanOptions{Source: source})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Scan(ctx); err != nil {
		return err
	}
	var warmT []time.Duration
	cpu0 := cpuTime()
	for range warmRuns {
		t0 := time.Now()
		if _, err := s.Scan(ctx); err != nil {
			return err
		}
		warmT = append(warmT, time.Since(t0))
	}
	cpuPerScan := (cpuTime() - cpu0) / time.Duration(warmRuns)
	st := s.Stats()

	intervalCPU := -1.0
	if intervalSecs > 0 {
		tick := time.NewTicker(time.Second)
		c0, w0 := cpuTime(), time.Now()
		for range intervalSecs {
			<-tick.C
			if _, err := s.Scan(ctx); err != nil {
				return err
			}
		}
		tick.Stop()
		intervalCPU = float64(cpuTime()-c0) / float64(time.Since(w0)) * 100
	}

	ss, cold, once, warm := median(ssT), median(coldT), median(onceT), median(warmT)
	fmt.Printf("%-8s sockets: scanner %d (%d with owner), ss %d lines (%d with users); source %s\n",
		label, socks, owned, ssLines, ssUsers, st.Source)
	fmt.Printf("%-8s %-22s %10s %8s\n", label, "measurement", "median", "vs ss")
	row := func(name string, d time.Duration) {
		fmt.Printf("%-8s %-22s %10s %7.2fx\n", label, name, ms(d), float64(d)/float64(ss))
	}
	row("ss -tunap", ss)
	row("full scan (cold)", cold)
	row("one-shot command", once)
	row("rescan (warm)", warm)
	fmt.Printf("%-8s %-22s %10s   (%.3f%% of a core at 1 s)\n", label, "CPU per warm rescan", ms(cpuPerScan), float64(cpuPerScan)/float64(time.Second)*100)
	if intervalCPU >= 0 {
		fmt.Printf("%-8s %-22s %9.3f%%   (measured over %d s)\n", label, "CPU at 1 s interval", intervalCPU, intervalSecs)
	}
	fmt.Printf("%-8s fd dirs read: %d in %d scans (%d in the first)\n", label, st.FDDirReads, st.Scans, firstReads(source))
	return nil
}

// firstReads returns how many fd directories a cold scan reads.
func firstReads(source string) uint64 {
	s, err := tracker.NewSystemScanner(tracker.ScanOptions{Source: source})
	if err != nil {
		return 0
	}
	defer s.Close()
	if _, err := s.Scan(context.Background()); err != nil {
		return 0
	}
	return s.Stats().FDDirReads
}

// ssCounts runs ss -tunap once and counts its socket lines and those
// with a users:(...) column.
func ssCounts(ss string) (lines, users int, err error) {
	out, err := exec.Command(ss, "-tunap").Output()
	if err != nil {
		return 0, 0, err
	}
	for i, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if i == 0 {
			continue // header
		}
		lines++
		if strings.Contains(l, "users:(") {
			users++
		}
	}
	return lines, users, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }
