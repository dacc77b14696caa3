package flowfmt

// This file builds synthetic nfdump 1.7 files (uncompressed, layout 2) from
// nfcap.Flow values, so the differential tests can feed the real nfdump
// records that no collector produces: every protocol, counters near 2^64,
// zero and reversed times, odd IPv6 addresses, every element nfdump 1.7.1
// prints. nfcap has no writer yet; this is just enough of one for tests.

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/netdumper/netdumper/nfcap"
)

// synthFlow is a flow plus the element ids to encode, in order.
type synthFlow struct {
	f     nfcap.Flow
	elems []uint16
}

type elemWriter struct{ b []byte }

func (w *elemWriter) begin(id uint16) int {
	at := len(w.b)
	w.b = binary.LittleEndian.AppendUint16(w.b, id)
	w.b = binary.LittleEndian.AppendUint16(w.b, 0)
	return at
}

func (w *elemWriter) end(at int) {
	binary.LittleEndian.PutUint16(w.b[at+2:], uint16(len(w.b)-at))
}

func (w *elemWriter) u8(v ...uint8) { w.b = append(w.b, v...) }
func (w *elemWriter) u16(v uint16)  { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *elemWriter) u32(v uint32)  { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *elemWriter) u64(v uint64)  { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *elemWriter) pad(n int)     { w.b = append(w.b, make([]byte, n)...) }
func (w *elemWriter) str(s string, n int) {
	b := make([]byte, n)
	copy(b, s)
	w.b = append(w.b, b...)
}

func (w *elemWriter) v4(a netip.Addr) {
	b := a.As4()
	w.u32(binary.BigEndian.Uint32(b[:]))
}

func (w *elemWriter) v6(a netip.Addr) {
	b := a.As16()
	w.u64(binary.BigEndian.Uint64(b[:8]))
	w.u64(binary.BigEndian.Uint64(b[8:]))
}

// encodeV3 encodes s as a V3 flow record (type 11).
func encodeV3(s *synthFlow) []byte {
	f := &s.f
	w := &elemWriter{}
	w.u16(nfcap.RecordTypeV3)
	w.u16(0) // size, patched below
	w.u16(uint16(len(s.elems)))
	w.u8(f.EngineType, f.EngineID)
	w.u16(f.ExporterID)
	w.u8(f.Flags, f.NfVersion)
	for _, id := range s.elems {
		at := w.begin(id)
		switch id {
		case nfcap.ElemGenericFlow:
			w.u64(f.MsecFirst)
			w.u64(f.MsecLast)
			w.u64(f.MsecReceived)
			w.u64(f.InPackets)
			w.u64(f.InBytes)
			w.u16(f.SrcPort)
			w.u16(f.DstPort)
			w.u8(f.Proto, f.TCPFlags, f.FwdStatus, f.SrcTos)
		case nfcap.ElemIPv4Flow:
			w.v4(f.SrcAddr)
			w.v4(f.DstAddr)
		case nfcap.ElemIPv6Flow:
			w.v6(f.SrcAddr)
			w.v6(f.DstAddr)
		case nfcap.ElemFlowMisc:
			w.u32(f.Input)
			w.u32(f.Output)
			w.u8(f.SrcMask, f.DstMask, f.Dir, f.DstTos, f.BiFlowDir, f.EndReason, f.RevTCPFlags, 0)
		case nfcap.ElemCntFlow:
			w.u64(f.Flows)
			w.u64(f.OutPackets)
			w.u64(f.OutBytes)
		case nfcap.ElemVLAN:
			w.u32(f.SrcVlan)
			w.u32(f.DstVlan)
		case nfcap.ElemASRouting:
			w.u32(f.SrcAS)
			w.u32(f.DstAS)
		case nfcap.ElemBGPNextHopV4:
			w.v4(f.BGPNextHop)
		case nfcap.ElemBGPNextHopV6:
			w.v6(f.BGPNextHop)
		case nfcap.ElemIPNextHopV4:
			w.v4(f.NextHop)
		case nfcap.ElemIPNextHopV6:
			w.v6(f.NextHop)
		case nfcap.ElemIPReceivedV4:
			w.v4(f.Received)
		case nfcap.ElemIPReceivedV6:
			w.v6(f.Received)
		case nfcap.ElemMPLSLabel:
			for _, l := range f.MPLSLabels {
				w.u32(l)
			}
		case nfcap.ElemMACAddr:
			w.u64(f.InSrcMAC)
			w.u64(f.OutDstMAC)
			w.u64(f.InDstMAC)
			w.u64(f.OutSrcMAC)
		case nfcap.ElemASAdjacent:
			w.u32(f.NextAdjacentAS)
			w.u32(f.PrevAdjacentAS)
		case nfcap.ElemLatency:
			w.u64(f.ClientLatency)
			w.u64(f.ServerLatency)
			w.u64(f.AppLatency)
		case nfcap.ElemNSELCommon:
			w.u64(f.MsecEvent)
			w.u32(f.ConnID)
			w.u16(f.FwXEvent)
			w.u8(f.FwEvent, 0)
		case nfcap.ElemNSELXlateIPv4:
			w.v4(f.XlateSrcAddr)
			w.v4(f.XlateDstAddr)
		case nfcap.ElemNSELXlateIPv6:
			w.v6(f.XlateSrcAddr)
			w.v6(f.XlateDstAddr)
		case nfcap.ElemNSELXlatePort:
			w.u16(f.XlateSrcPort)
			w.u16(f.XlateDstPort)
		case nfcap.ElemNSELACL:
			for _, v := range f.IngressACL {
				w.b = binary.BigEndian.AppendUint32(w.b, v)
			}
			for _, v := range f.EgressACL {
				w.b = binary.BigEndian.AppendUint32(w.b, v)
			}
		case nfcap.ElemNSELUser:
			w.str(f.Username, nfcap.UserNameSize)
			w.pad(2)
		case nfcap.ElemNELCommon:
			w.u64(f.NelMsecEvent)
			w.u32(f.NatPoolID)
			w.u8(f.NatEvent, 0)
			w.u16(0)
		case nfcap.ElemNELXlatePort:
			w.u16(f.BlockStart)
			w.u16(f.BlockEnd)
			w.u16(f.BlockStep)
			w.u16(f.BlockSize)
		case nfcap.ElemLabel:
			w.str(f.Label, len(f.Label)+1)
		case nfcap.ElemObservation:
			w.u64(f.ObservationPointID)
			w.u32(f.ObservationDomainID)
			w.u32(0)
		case nfcap.ElemVrf:
			w.u32(f.EgressVrf)
			w.u32(f.IngressVrf)
		case nfcap.ElemTunIPv4:
			w.v4(f.TunSrcAddr)
			w.v4(f.TunDstAddr)
			w.u32(f.TunProto)
		case nfcap.ElemTunIPv6:
			w.v6(f.TunSrcAddr)
			w.v6(f.TunDstAddr)
			w.u32(f.TunProto)
			w.u32(0)
		case nfcap.ElemSamplerInfo:
			w.u32(uint32(f.SamplerID))
			w.u32(f.SamplerInterval)
			w.u16(f.SamplerMode)
			w.u16(f.SamplerSysID)
		default:
			panic("synth: element not supported")
		}
		w.end(at)
	}
	binary.LittleEndian.PutUint16(w.b[2:], uint16(len(w.b)))
	return w.b
}

// writeSynthFile writes flows as an uncompressed nfdump 1.7.1 file with an
// exporter record, data blocks of at most 1 MiB and an appendix (ident and a
// stat record computed from the flows).
func writeSynthFile(t testing.TB, path string, flows []synthFlow) {
	t.Helper()
	le := binary.LittleEndian
	var stat nfcap.Stat
	var blocks [][]byte
	var cur []byte
	var n uint32
	flush := func() {
		if n == 0 {
			return
		}
		var h []byte
		h = le.AppendUint32(h, n)
		h = le.AppendUint32(h, uint32(len(cur)))
		h = le.AppendUint16(h, nfcap.BlockTypeData)
		h = le.AppendUint16(h, 0)
		blocks = append(blocks, append(h, cur...))
		cur, n = nil, 0
	}
	// One exporter info record for sysid 1 (127.0.0.1, NetFlow v9).
	exp := make([]byte, 32)
	le.PutUint16(exp[0:], nfcap.RecordTypeExporterInfo)
	le.PutUint16(exp[2:], 32)
	le.PutUint32(exp[4:], 9)
	le.PutUint32(exp[16:], 0x7f000001)
	le.PutUint16(exp[24:], 2)
	le.PutUint16(exp[26:], 1)
	le.PutUint32(exp[28:], 1)
	cur, n = append(cur, exp...), 1
	for i := range flows {
		rec := encodeV3(&flows[i])
		if len(cur)+len(rec) > nfcap.WriteBlockSize {
			flush()
		}
		cur = append(cur, rec...)
		n++
		var f nfcap.Flow
		if err := nfcap.DecodeFlow(rec, &f); err != nil {
			t.Fatalf("synth record %d does not decode: %v", i, err)
		}
		stat.Add(&f)
	}
	flush()
	var app []byte
	app = append(app, nfcap.IdentRecord("synth")...)
	app = stat.AppendRecord(app)
	var ah []byte
	ah = le.AppendUint32(ah, 2)
	ah = le.AppendUint32(ah, uint32(len(app)))
	ah = le.AppendUint16(ah, nfcap.BlockTypeData)
	ah = le.AppendUint16(ah, 0)

	off := int64(nfcap.HeaderSize)
	for _, b := range blocks {
		off += int64(len(b))
	}
	hdr := nfcap.Header{
		Magic: nfcap.Magic, Version: nfcap.LayoutVersion, NfdVersion: nfcap.NfdVersion171,
		Created: 1700000000, AppendixBlocks: 1, OffAppendix: off, NumBlocks: uint32(len(blocks)),
	}
	out, err := hdr.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		out = append(out, b...)
	}
	out = append(out, ah...)
	out = append(out, app...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// randAddr6 returns IPv6 addresses that exercise inet_ntop's corner cases:
// zero runs of every length and place, v4-mapped and v4-compatible forms.
func randAddr6(r *rand.Rand) netip.Addr {
	var a [16]byte
	switch r.IntN(10) {
	case 0: // all zero or ::1 or ::x
		a[15] = byte(r.IntN(3))
	case 1: // v4-mapped
		a[10], a[11] = 0xff, 0xff
		for i := 12; i < 16; i++ {
			a[i] = byte(r.IntN(256))
		}
	case 2: // v4-compatible-ish: zero prefix of random length
		for i := 2 * r.IntN(8); i < 16; i++ {
			a[i] = byte(r.IntN(256))
		}
	case 3: // full random
		for i := range a {
			a[i] = byte(r.IntN(256))
		}
	default: // random words, many of them zero
		for w := 0; w < 8; w++ {
			if r.IntN(2) == 0 {
				v := r.IntN(1 << (4 * (1 + r.IntN(4))))
				a[2*w], a[2*w+1] = byte(v>>8), byte(v)
			}
		}
	}
	return netip.AddrFrom16(a)
}

func randAddr4(r *rand.Rand) netip.Addr {
	switch r.IntN(8) {
	case 0:
		return netip.AddrFrom4([4]byte{})
	case 1:
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
}

// randCount returns counters across every scaling range of nfdump.
func randCount(r *rand.Rand) uint64 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return r.Uint64() // up to 2^64-1
	case 2:
		return uint64(r.IntN(10)) * 1000000 // exact boundaries
	case 3:
		return 999999 + uint64(r.IntN(3))
	case 4:
		return uint64(r.Int64N(1 << 45))
	case 5:
		return uint64(r.IntN(100000000000)) + 950000000
	}
	return uint64(r.IntN(100000))
}

const unameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:/()[]@+"

// randFlow builds a random flow with a random selection of elements.
func randFlow(r *rand.Rand) synthFlow {
	var s synthFlow
	f := &s.f
	f.EngineType = uint8(r.IntN(256))
	f.EngineID = uint8(r.IntN(256))
	f.ExporterID = 1
	if r.IntN(10) == 0 {
		f.ExporterID = uint16(r.IntN(65536))
	}
	f.NfVersion = []uint8{5, 9, 10, 0, 0x89, 0x4a}[r.IntN(6)]
	if r.IntN(10) == 0 {
		f.Flags = nfcap.FlagEvent
	}

	// Times: mostly plausible, sometimes zero, reversed, or far apart.
	base := uint64(1700000000000) + uint64(r.Int64N(400*86400*1000))
	f.MsecFirst = base
	switch r.IntN(12) {
	case 0:
		f.MsecLast = base
	case 1:
		f.MsecLast = base - uint64(r.IntN(100000)) // reversed: negative duration
	case 2:
		f.MsecLast = base + uint64(r.Int64N(1000*86400*1000)) // days
	case 3:
		f.MsecFirst = 0
		f.MsecLast = uint64(r.IntN(2)) * base
	case 4:
		f.MsecLast = base + 59999 + uint64(r.IntN(2)) // minute boundary
	case 5:
		f.MsecLast = base + uint64(r.Int64N(1<<52)) // beyond nfdump's int day arithmetic
	default:
		f.MsecLast = base + uint64(r.IntN(4000000))
	}
	f.MsecReceived = f.MsecLast + uint64(r.IntN(100000))
	if r.IntN(10) == 0 {
		f.MsecReceived = 0
	}
	f.InPackets = randCount(r)
	f.InBytes = randCount(r)
	f.SrcPort = uint16(r.IntN(65536))
	f.DstPort = uint16(r.IntN(65536))
	switch r.IntN(6) {
	case 0:
		f.Proto = uint8(r.IntN(256))
	case 1:
		f.Proto = nfcap.ProtoICMP
	case 2:
		f.Proto = nfcap.ProtoICMPv6
	case 3:
		f.Proto = nfcap.ProtoUDP
	default:
		f.Proto = nfcap.ProtoTCP
	}
	f.TCPFlags = uint8(r.IntN(256))
	f.FwdStatus = uint8(r.IntN(256))
	f.SrcTos = uint8(r.IntN(256))
	s.elems = append(s.elems, nfcap.ElemGenericFlow)

	switch r.IntN(10) {
	case 0: // no address element at all
	case 1, 2, 3, 4:
		f.SrcAddr, f.DstAddr = randAddr6(r), randAddr6(r)
		s.elems = append(s.elems, nfcap.ElemIPv6Flow)
	default:
		f.SrcAddr, f.DstAddr = randAddr4(r), randAddr4(r)
		s.elems = append(s.elems, nfcap.ElemIPv4Flow)
	}
	maybe := func(p int, id uint16, fill func()) {
		if r.IntN(100) < p {
			fill()
			s.elems = append(s.elems, id)
		}
	}
	maybe(70, nfcap.ElemFlowMisc, func() {
		f.Input, f.Output = r.Uint32()>>uint(r.IntN(32)), r.Uint32()>>uint(r.IntN(32))
		f.SrcMask, f.DstMask = uint8(r.IntN(129)), uint8(r.IntN(129))
		f.Dir, f.DstTos = uint8(r.IntN(3)), uint8(r.IntN(256))
		f.BiFlowDir, f.EndReason, f.RevTCPFlags = uint8(r.IntN(5)), uint8(r.IntN(7)), uint8(r.IntN(256))
	})
	maybe(40, nfcap.ElemCntFlow, func() {
		f.Flows = uint64(r.IntN(3))
		if r.IntN(5) == 0 {
			f.Flows = r.Uint64() >> uint(r.IntN(64))
		}
		f.OutPackets, f.OutBytes = randCount(r), randCount(r)
	})
	maybe(20, nfcap.ElemVLAN, func() { f.SrcVlan, f.DstVlan = r.Uint32()>>uint(r.IntN(32)), uint32(r.IntN(4096)) })
	maybe(30, nfcap.ElemASRouting, func() { f.SrcAS, f.DstAS = r.Uint32()>>uint(r.IntN(32)), uint32(r.IntN(70000)) })
	if r.IntN(4) == 0 {
		if r.IntN(2) == 0 {
			f.BGPNextHop = randAddr4(r)
			s.elems = append(s.elems, nfcap.ElemBGPNextHopV4)
		} else {
			f.BGPNextHop = randAddr6(r)
			s.elems = append(s.elems, nfcap.ElemBGPNextHopV6)
		}
	}
	if r.IntN(4) == 0 {
		if r.IntN(2) == 0 {
			f.NextHop = randAddr4(r)
			s.elems = append(s.elems, nfcap.ElemIPNextHopV4)
		} else {
			f.NextHop = randAddr6(r)
			s.elems = append(s.elems, nfcap.ElemIPNextHopV6)
		}
	}
	switch r.IntN(5) {
	case 0:
	case 1:
		f.Received = randAddr6(r)
		s.elems = append(s.elems, nfcap.ElemIPReceivedV6)
	default:
		f.Received = randAddr4(r)
		s.elems = append(s.elems, nfcap.ElemIPReceivedV4)
	}
	maybe(15, nfcap.ElemMPLSLabel, func() {
		for i := range f.MPLSLabels {
			f.MPLSLabels[i] = r.Uint32() >> uint(r.IntN(32))
		}
	})
	maybe(15, nfcap.ElemMACAddr, func() {
		f.InSrcMAC, f.OutDstMAC = r.Uint64()>>16, r.Uint64()
		f.InDstMAC, f.OutSrcMAC = r.Uint64()>>16, r.Uint64()>>uint(r.IntN(64))
	})
	maybe(15, nfcap.ElemASAdjacent, func() { f.NextAdjacentAS, f.PrevAdjacentAS = r.Uint32(), uint32(r.IntN(65536)) })
	maybe(15, nfcap.ElemLatency, func() {
		f.ClientLatency, f.ServerLatency, f.AppLatency = uint64(r.Int64N(1<<40)), uint64(r.IntN(100000)), uint64(r.IntN(10))
	})
	maybe(10, nfcap.ElemNSELCommon, func() {
		f.MsecEvent = base + uint64(r.IntN(1000))
		f.ConnID, f.FwXEvent, f.FwEvent = r.Uint32(), []uint16{0, 1001, 1002, 1003, 1004, 7}[r.IntN(6)], uint8(r.IntN(7))
	})
	if r.IntN(10) == 0 {
		if r.IntN(2) == 0 {
			f.XlateSrcAddr, f.XlateDstAddr = randAddr4(r), randAddr4(r)
			s.elems = append(s.elems, nfcap.ElemNSELXlateIPv4)
		} else {
			f.XlateSrcAddr, f.XlateDstAddr = randAddr6(r), randAddr6(r)
			s.elems = append(s.elems, nfcap.ElemNSELXlateIPv6)
		}
	}
	maybe(10, nfcap.ElemNSELXlatePort, func() { f.XlateSrcPort, f.XlateDstPort = uint16(r.IntN(65536)), uint16(r.IntN(65536)) })
	maybe(10, nfcap.ElemNSELACL, func() {
		for i := 0; i < 3; i++ {
			f.IngressACL[i], f.EgressACL[i] = r.Uint32(), r.Uint32()
		}
	})
	maybe(60, nfcap.ElemNSELUser, func() {
		n := r.IntN(nfcap.MaxUserNameLen + 1)
		switch r.IntN(10) {
		case 0, 1:
			n = 0
		case 2:
			n = nfcap.UserNameSize // 66 bytes, no terminating NUL
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = unameChars[r.IntN(len(unameChars))]
		}
		if n > 4 && r.IntN(5) == 0 {
			copy(b, "Wéb\t") // UTF-8 and a backslash
		}
		f.Username = string(b)
	})
	maybe(5, nfcap.ElemNELCommon, func() {
		f.NelMsecEvent, f.NatPoolID, f.NatEvent = base+uint64(r.IntN(1000)), r.Uint32(), uint8(r.IntN(20))
	})
	maybe(5, nfcap.ElemNELXlatePort, func() {
		f.BlockStart, f.BlockEnd, f.BlockStep, f.BlockSize = uint16(r.IntN(65536)), uint16(r.IntN(65536)), uint16(r.IntN(65536)), uint16(r.IntN(65536))
	})
	maybe(10, nfcap.ElemLabel, func() {
		b := make([]byte, 1+r.IntN(20))
		for i := range b {
			b[i] = unameChars[r.IntN(26)]
		}
		f.Label = string(b)
	})
	maybe(10, nfcap.ElemObservation, func() { f.ObservationPointID, f.ObservationDomainID = r.Uint64()>>uint(r.IntN(64)), r.Uint32() })
	maybe(10, nfcap.ElemVrf, func() { f.EgressVrf, f.IngressVrf = r.Uint32(), r.Uint32()>>uint(r.IntN(32)) })
	switch r.IntN(40) {
	case 0:
		f.TunSrcAddr, f.TunDstAddr, f.TunProto = randAddr4(r), randAddr4(r), uint32(r.IntN(256))
		s.elems = append(s.elems, nfcap.ElemTunIPv4)
	case 1:
		f.TunSrcAddr, f.TunDstAddr, f.TunProto = randAddr6(r), randAddr6(r), uint32(r.IntN(256))
		s.elems = append(s.elems, nfcap.ElemTunIPv6)
	}
	// Shuffle the element order (nfcapd writes them in template order).
	r.Shuffle(len(s.elems), func(i, j int) { s.elems[i], s.elems[j] = s.elems[j], s.elems[i] })
	return s
}
