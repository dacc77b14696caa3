//go:build linux

package tracker

import (
	"context"
	"testing"
)

// BenchmarkScanCold measures one full attributed scan with a new scanner
// (cold cache) of whatever the host holds; run it beside bench/sockload
// for meaningful numbers (bench/tracker-scan.sh does).
func BenchmarkScanCold(b *testing.B) {
	ctx := context.Background()
	socks := 0
	for b.Loop() {
		s, err := NewSystemScanner(ScanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		snap, err := s.Scan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		socks = len(snap.Sockets)
		s.Close()
	}
	b.ReportMetric(float64(socks), "sockets")
}

// BenchmarkScanWarm measures a steady-state rescan: nothing changed since
// the previous scan.
func BenchmarkScanWarm(b *testing.B) {
	ctx := context.Background()
	s, err := NewSystemScanner(ScanOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Scan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if snap, err = s.Scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(snap.Sockets)), "sockets")
}

// BenchmarkScanProcfsWarm is BenchmarkScanWarm with the /proc/net source.
func BenchmarkScanProcfsWarm(b *testing.B) {
	ctx := context.Background()
	s, err := NewSystemScanner(ScanOptions{Source: SourceProcfs})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewSystemScanner measures the scanner's construction (netlink
// sockets, boot time, procfs root), part of a one-shot run.
func BenchmarkNewSystemScanner(b *testing.B) {
	for b.Loop() {
		s, err := NewSystemScanner(ScanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
