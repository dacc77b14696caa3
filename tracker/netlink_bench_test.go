//go:build linux

package tracker

import (
	"context"
	"testing"
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
