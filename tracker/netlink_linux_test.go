package tracker

import (
	"context"
	"testing"
	"time"
)

// BenchmarkNetlinkDump measures the four sock_diag dumps alone.
func BenchmarkNetlinkDump(b *testing.B) {
	ctx := context.Background()
	src, err := newNetlinkSource(ctx, true)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var buf []Socket
	for _, bc := range []struct {
		name   string
		family uint8
		proto  Proto
	}{{"tcp4", afInet, ProtoTCP}, {"tcp6", afInet6, ProtoTCP}, {"udp4", afInet, ProtoUDP}, {"udp6", afInet6, ProtoUDP}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if buf, err = src.dumpOne(ctx, src.c, buf[:0], bc.family, bc.proto); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "sockets")
		})
	}
	b.Run("tcp-one-walk", func(b *testing.B) {
		for b.Loop() {
			if buf, err = src.dumpTCP(ctx, src.c, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "sockets")
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if buf, err = src.AppendSockets(ctx, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "sockets")
	})
}

// TestNetlinkAbandonedDump checks that a dump abandoned half-way, or
// after its last datagram was read but not parsed, does not make the next
// one fail (the kernel answers EBUSY while a dump is unfinished on a
// socket) nor wait.
func TestNetlinkAbandonedDump(t *testing.T) {
	src, err := newNetlinkSource(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, after := range []int{1, 1 << 20} { // datagrams read before giving up
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		_ = src.c.dump(ctx, appendCompatTCPRequest, func(b []byte, seq uint32) (bool, error) {
			calls++
			done := false
			_ = nlMessages(b, func(h nlHeader, _ []byte, _ int) error {
				done = done || h.Type == nlmsgDone
				return nil
			})
			if calls >= after || done {
				cancel() // give up without reporting the end
			}
			return false, nil
		})
		cancel()
		start := time.Now()
		if _, err := src.dumpTCP(t.Context(), src.c, nil); err != nil {
			t.Fatalf("dump after one abandoned after %d datagram(s): %v", calls, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("dump after an abandoned one took %v", d)
		}
		if src.c.unfinished != 0 {
			t.Errorf("dump %d still marked unfinished", src.c.unfinished)
		}
	}
}
