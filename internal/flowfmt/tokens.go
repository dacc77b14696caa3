package flowfmt

import (
	"net/netip"
	"strconv"

	"github.com/netdumper/netdumper/nfcap"
)

// appendFunc formats one token of f.
type appendFunc func(fm *Format, b []byte, f *nfcap.Flow) []byte

// token is one %token of nfdump 1.7.1's format_token_list. header is the
// column title exactly as nfdump prints it; addr marks address columns
// (they get 23 more header spaces in long IPv6 mode). A nil fn means the
// token exists in nfdump but netdumper cannot print it; why says what is
// missing.
type token struct {
	name   string
	addr   bool
	header string
	fn     appendFunc
	why    string
}

const (
	whyGeo   = "needs nfdump's geo database"
	whyNames = "needs the interface/VRF/nbar name tables"
	whyPay   = "payload decoding is not implemented"
)

// tokens in nfdump 1.7.1's table order (the order decides which token a
// prefix such as "%mpls10" matches).
var tokens = []token{
	{name: "%nfv", header: "Ver", fn: fmtVersion},
	{name: "%cnt", header: "Count", fn: fmtCount},
	{name: "%tfs", header: "Date first seen        ", fn: fmtFirst},
	{name: "%ts", header: "Date first seen        ", fn: fmtFirst},
	{name: "%tsr", header: "Date first seen (raw)    ", fn: fmtFirstRaw},
	{name: "%te", header: "Date last seen         ", fn: fmtLast},
	{name: "%ter", header: "Date last seen (raw)     ", fn: fmtLastRaw},
	{name: "%tr", header: "Date flow received     ", fn: fmtReceived},
	{name: "%trr", header: "Date flow received (raw)  ", fn: fmtReceivedRaw},
	{name: "%td", header: "    Duration    ", fn: fmtDuration},
	{name: "%tds", header: "    Duration    ", fn: fmtDurationSec},
	{name: "%exp", header: "Exp ID", fn: fmtExporter},
	{name: "%pr", header: "Proto", fn: fmtProto},
	{name: "%sa", addr: true, header: "     Src IP Addr", fn: fmtSrcAddr},
	{name: "%da", addr: true, header: "     Dst IP Addr", fn: fmtDstAddr},
	{name: "%gsa", addr: true, header: "     Src IP Addr(..)", why: whyGeo},
	{name: "%gda", addr: true, header: "     Dst IP Addr(..)", why: whyGeo},
	{name: "%sn", addr: true, header: "        Src Network", fn: fmtSrcNet},
	{name: "%dn", addr: true, header: "        Dst Network", fn: fmtDstNet},
	{name: "%nh", addr: true, header: "     Next-hop IP", fn: fmtNextHop},
	{name: "%nhb", addr: true, header: " BGP next-hop IP", fn: fmtBGPNextHop},
	{name: "%ra", addr: true, header: "       Router IP", fn: fmtRouter},
	{name: "%sap", addr: true, header: "     Src IP Addr:Port ", fn: fmtSrcAddrPort},
	{name: "%dap", addr: true, header: "     Dst IP Addr:Port ", fn: fmtDstAddrPort},
	{name: "%gsap", addr: true, header: "     Src IP Addr(..):Port ", why: whyGeo},
	{name: "%gdap", addr: true, header: "     Dst IP Addr(..):Port ", why: whyGeo},
	{name: "%sp", header: "Src Pt", fn: fmtSrcPort},
	{name: "%dp", header: "Dst Pt", fn: fmtDstPort},
	{name: "%it", header: "ICMP-T", fn: fmtICMPType},
	{name: "%ic", header: "ICMP-C", fn: fmtICMPCode},
	{name: "%sas", header: "Src AS", fn: fmtSrcAS},
	{name: "%das", header: "Dst AS", fn: fmtDstAS},
	{name: "%nas", header: "Next AS", fn: fmtNextAS},
	{name: "%pas", header: "Prev AS", fn: fmtPrevAS},
	{name: "%in", header: " Input", fn: fmtInput},
	{name: "%inam", header: " Input interface name", why: whyNames},
	{name: "%out", header: "Output", fn: fmtOutput},
	{name: "%onam", header: "Output interface name", why: whyNames},
	{name: "%pkt", header: " Packets", fn: fmtInPackets},
	{name: "%ipkt", header: "  In Pkt", fn: fmtInPackets},
	{name: "%opkt", header: " Out Pkt", fn: fmtOutPackets},
	{name: "%byt", header: "   Bytes", fn: fmtInBytes},
	{name: "%ibyt", header: " In Byte", fn: fmtInBytes},
	{name: "%obyt", header: "Out Byte", fn: fmtOutBytes},
	{name: "%fl", header: "Flows", fn: fmtFlows},
	{name: "%flg", header: "   Flags", fn: fmtFlags},
	{name: "%tos", header: "Tos", fn: fmtTos},
	{name: "%stos", header: "STos", fn: fmtSrcTos},
	{name: "%dtos", header: "DTos", fn: fmtDstTos},
	{name: "%dir", header: "Dir", fn: fmtDir},
	{name: "%smk", header: "SMask", fn: fmtSrcMask},
	{name: "%dmk", header: "DMask", fn: fmtDstMask},
	{name: "%fwd", header: "Fwd", fn: fmtFwd},
	{name: "%bfd", header: "Bfd", fn: fmtBiFlowDir},
	{name: "%end", header: "End", fn: fmtEndReason},
	{name: "%svln", header: "SVlan", fn: fmtSrcVlan},
	{name: "%dvln", header: "DVlan", fn: fmtDstVlan},
	{name: "%ismc", header: "  In src MAC Addr", fn: macFunc(func(f *nfcap.Flow) uint64 { return f.InSrcMAC })},
	{name: "%odmc", header: " Out dst MAC Addr", fn: macFunc(func(f *nfcap.Flow) uint64 { return f.OutDstMAC })},
	{name: "%idmc", header: "  In dst MAC Addr", fn: macFunc(func(f *nfcap.Flow) uint64 { return f.InDstMAC })},
	{name: "%osmc", header: " Out src MAC Addr", fn: macFunc(func(f *nfcap.Flow) uint64 { return f.OutSrcMAC })},
	{name: "%mpls1", header: " MPLS lbl 1 ", fn: mplsFunc(0)},
	{name: "%mpls2", header: " MPLS lbl 2 ", fn: mplsFunc(1)},
	{name: "%mpls3", header: " MPLS lbl 3 ", fn: mplsFunc(2)},
	{name: "%mpls4", header: " MPLS lbl 4 ", fn: mplsFunc(3)},
	{name: "%mpls5", header: " MPLS lbl 5 ", fn: mplsFunc(4)},
	{name: "%mpls6", header: " MPLS lbl 6 ", fn: mplsFunc(5)},
	{name: "%mpls7", header: " MPLS lbl 7 ", fn: mplsFunc(6)},
	{name: "%mpls8", header: " MPLS lbl 8 ", fn: mplsFunc(7)},
	{name: "%mpls9", header: " MPLS lbl 9 ", fn: mplsFunc(8)},
	{name: "%mpls10", header: " MPLS lbl 10", fn: mplsFunc(9)},
	{name: "%mpls", header: "                                               MPLS labels 1-10                                                                   ", fn: fmtMPLSAll},
	{name: "%bps", header: "     bps", fn: fmtBps},
	{name: "%pps", header: "     pps", fn: fmtPps},
	{name: "%bpp", header: "   Bpp", fn: fmtBpp},
	{name: "%eng", header: " engine", fn: fmtEngine},
	{name: "%lbl", header: "           label", fn: fmtLabel},
	{name: "%sc", header: "SC", why: whyGeo},
	{name: "%dc", header: "DC", why: whyGeo},
	{name: "%sloc", header: "Src IP location info", why: whyGeo},
	{name: "%dloc", header: "Src IP location info", why: whyGeo},
	{name: "%n", header: "", fn: fmtNewline},
	{name: "%ipl", header: "", why: whyPay},
	{name: "%opl", header: "", why: whyPay},
	{name: "%nbid", header: "nbar ID", why: whyNames},
	{name: "%ja3", header: "                             ja3", why: whyPay},
	{name: "%sni", header: "sni name", why: whyPay},
	{name: "%nbnam", header: "nbar name", why: whyNames},
	{name: "%odid", header: "obsDomainID", fn: fmtObsDomain},
	{name: "%opid", header: "  obsPointID", fn: fmtObsPoint},
	{name: "%vrf", header: "  I-VRF-ID", fn: fmtIngressVrf},
	{name: "%ivrf", header: "  I-VRF-ID", fn: fmtIngressVrf},
	{name: "%ivrfnam", header: "  I-VRF-Name", why: whyNames},
	{name: "%evrf", header: "  E-VRF-ID", fn: fmtEgressVrf},
	{name: "%evrfnam", header: "  E-VRF-Name", why: whyNames},
	// NSEL
	{name: "%nfc", header: "   Conn-ID", fn: fmtConnID},
	{name: "%tevt", header: "Event time             ", fn: fmtEventTime},
	{name: "%evt", header: " Event", fn: fmtEvent},
	{name: "%xevt", header: " XEvent", fn: fmtXEvent},
	{name: "%sgt", header: "  SGT  ", fn: fmtSGT},
	{name: "%msec", header: "   Event Time", fn: fmtMsecEvent},
	{name: "%iacl", header: "Ingress ACL                     ", fn: fmtIngressACL},
	{name: "%eacl", header: "Egress ACL                      ", fn: fmtEgressACL},
	{name: "%xsa", header: "   X-late Src IP", fn: fmtXlateSrcAddr},
	{name: "%xda", header: "   X-late Dst IP", fn: fmtXlateDstAddr},
	{name: "%xsp", header: "XsPort", fn: fmtXlateSrcPort},
	{name: "%xdp", header: "XdPort", fn: fmtXlateDstPort},
	{name: "%xsap", addr: true, header: "   X-Src IP Addr:Port ", fn: fmtXlateSrcAddrPort},
	{name: "%xdap", addr: true, header: "   X-Dst IP Addr:Port ", fn: fmtXlateDstAddrPort},
	{name: "%uname", header: "UserName", fn: fmtUsername},
	// NEL
	{name: "%nevt", header: " Event", fn: fmtEvent},
	{name: "%nsa", header: "   X-late Src IP", fn: fmtXlateSrcAddr},
	{name: "%nda", header: "   X-late Dst IP", fn: fmtXlateDstAddr},
	{name: "%nsp", header: "XsPort", fn: fmtXlateSrcPort},
	{name: "%ndp", header: "XdPort", fn: fmtXlateDstPort},
	{name: "%nsap", addr: true, header: "   X-Src IP Addr:Port ", fn: fmtXlateSrcAddrPort},
	{name: "%ndap", addr: true, header: "   X-Dst IP Addr:Port ", fn: fmtXlateDstAddrPort},
	{name: "%pbstart", header: "Pb-Start", fn: u16Func(7, func(f *nfcap.Flow) uint16 { return f.BlockStart })},
	{name: "%pbend", header: "Pb-End", fn: u16Func(7, func(f *nfcap.Flow) uint16 { return f.BlockEnd })},
	{name: "%pbstep", header: "Pb-Step", fn: u16Func(7, func(f *nfcap.Flow) uint16 { return f.BlockStep })},
	{name: "%pbsize", header: "Pb-Size", fn: u16Func(7, func(f *nfcap.Flow) uint16 { return f.BlockSize })},
	// latency
	{name: "%cl", header: "C Latency", fn: latencyFunc(func(f *nfcap.Flow) uint64 { return f.ClientLatency })},
	{name: "%sl", header: "S latency", fn: latencyFunc(func(f *nfcap.Flow) uint64 { return f.ServerLatency })},
	{name: "%al", header: "A latency", fn: latencyFunc(func(f *nfcap.Flow) uint64 { return f.AppLatency })},
}

func fmtVersion(_ *Format, b []byte, f *nfcap.Flow) []byte {
	switch {
	case f.Flags&nfcap.FlagEvent != 0:
		b = append(b, "EVT"...)
		return strconv.AppendUint(b, uint64(f.NfVersion), 10)
	case f.NfVersion == 0:
		return append(b, "FLO"...)
	case f.NfVersion&0x80 != 0:
		b = append(b, "Sv"...)
	case f.NfVersion&0x40 != 0:
		b = append(b, "Pv"...)
	default:
		b = append(b, "Nv"...)
	}
	return strconv.AppendUint(b, uint64(f.NfVersion&0x0f), 10)
}

// fmtCount prints nfdump's flowCount: the number of the record in the
// output, counting from 1.
func fmtCount(fm *Format, b []byte, _ *nfcap.Flow) []byte {
	if fm.tunnel {
		return appendUintW(b, 0, 5)
	}
	return appendUintW(b, uint64(uint32(fm.count)), 5)
}

func fmtFirst(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return fm.tFirst.appendMsecTime(b, f.MsecFirst, fm.loc)
}

func fmtLast(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return fm.tLast.appendMsecTime(b, f.MsecLast, fm.loc)
}

func fmtReceived(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return fm.tOther.appendMsecTime(b, f.MsecReceived, fm.loc)
}

func fmtFirstRaw(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendMsecRaw(b, f.MsecFirst) }

// fmtLastRaw prints the last-seen time as seconds.milliseconds, but, like
// nfdump 1.7.1, with only the last two digits of the milliseconds.
func fmtLastRaw(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendMsecRaw(b, f.MsecLast/1000*1000+f.MsecLast%100)
}
func fmtReceivedRaw(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendMsecRaw(b, f.MsecReceived)
}

func fmtDuration(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return appendDurationMs(b, f.MsecFirst, f.MsecLast, fm.plain)
}

func fmtDurationSec(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendFloatW(b, duration(f.MsecFirst, f.MsecLast), 3, 16)
}

func fmtExporter(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.ExporterID), 6)
}

func fmtProto(fm *Format, b []byte, f *nfcap.Flow) []byte {
	start := len(b)
	b = appendProto(b, f.Proto, fm.plain)
	return ljust(b, start, 5)
}

// appendAddrCol appends an address column: "%16s" with long IPv6
// addresses condensed, or "%39s" in long IPv6 mode. It reports whether the
// address was IPv6.
func (fm *Format) appendAddrCol(b []byte, a netip.Addr) ([]byte, bool) {
	start := len(b)
	b, v6 := appendAddr(b, a)
	if fm.longV6 {
		return rjust(b, start, 39), v6
	}
	if v6 {
		b = condenseV6(b, start)
	}
	return rjust(b, start, 16), v6
}

func fmtSrcAddr(fm *Format, b []byte, _ *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, fm.src)
	return b
}

func fmtDstAddr(fm *Format, b []byte, _ *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, fm.dst)
	return b
}

// appendPortSep appends the separator nfdump puts between an address and
// its port: '.' after IPv6, ':' after IPv4.
func appendPortSep(b []byte, v6 bool) []byte {
	if v6 {
		return append(b, '.')
	}
	return append(b, ':')
}

func fmtSrcAddrPort(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, v6 := fm.appendAddrCol(b, fm.src)
	b = appendPortSep(b, v6)
	return appendUintL(b, uint64(f.SrcPort), 5)
}

// appendDstPort appends the destination port, or "type.code" for ICMP.
func appendDstPort(b []byte, f *nfcap.Flow) []byte {
	if f.IsICMP() {
		b = strconv.AppendUint(b, uint64(f.ICMPType()), 10)
		b = append(b, '.')
		return strconv.AppendUint(b, uint64(f.ICMPCode()), 10)
	}
	return strconv.AppendUint(b, uint64(f.DstPort), 10)
}

func fmtDstAddrPort(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, v6 := fm.appendAddrCol(b, fm.dst)
	b = appendPortSep(b, v6)
	start := len(b)
	b = appendDstPort(b, f)
	return ljust(b, start, 5)
}

// maskAddr applies a netmask the way nfdump's ApplyNetMaskBits does,
// including its C shift quirks: the shift count is taken modulo the word
// size, so a mask of 0 keeps an IPv4 address and an IPv6 address keeps its
// upper half but loses its lower half.
func maskAddr(a netip.Addr, bits uint8) netip.Addr {
	switch {
	case a.Is6():
		x := a.As16()
		hi := uint64(0)
		lo := uint64(0)
		for i := 0; i < 8; i++ {
			hi = hi<<8 | uint64(x[i])
			lo = lo<<8 | uint64(x[8+i])
		}
		if bits > 64 {
			lo &= ^uint64(0) << ((128 - uint(bits)) & 63)
		} else {
			hi &= ^uint64(0) << ((64 - uint(bits)) & 63)
			lo = 0
		}
		for i := 7; i >= 0; i-- {
			x[i], x[8+i] = byte(hi), byte(lo)
			hi >>= 8
			lo >>= 8
		}
		return netip.AddrFrom16(x)
	case a.Is4():
		x := a.As4()
		v := uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3])
		v &= ^uint32(0) << ((32 - uint(bits)) & 31)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return a
}

func fmtSrcNet(fm *Format, b []byte, f *nfcap.Flow) []byte {
	fm.src = maskAddr(fm.src, f.SrcMask)
	b, _ = fm.appendAddrCol(b, fm.src)
	b = append(b, '/')
	return appendUintL(b, uint64(f.SrcMask), 2)
}

func fmtDstNet(fm *Format, b []byte, f *nfcap.Flow) []byte {
	fm.dst = maskAddr(fm.dst, f.DstMask)
	b, _ = fm.appendAddrCol(b, fm.dst)
	b = append(b, '/')
	return appendUintL(b, uint64(f.DstMask), 2)
}

func fmtNextHop(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, f.NextHop)
	return b
}

func fmtBGPNextHop(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, f.BGPNextHop)
	return b
}

func fmtRouter(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, f.Received)
	return b
}

func fmtSrcPort(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.SrcPort), 6)
}

func fmtDstPort(_ *Format, b []byte, f *nfcap.Flow) []byte {
	start := len(b)
	b = appendDstPort(b, f)
	return rjust(b, start, 6)
}

// icmpTypeCode returns nfdump's icmpType and icmpCode, which are set only
// for ICMP and ICMPv6 flows.
func icmpTypeCode(f *nfcap.Flow) (uint8, uint8) {
	if f.IsICMP() {
		return f.ICMPType(), f.ICMPCode()
	}
	return 0, 0
}

func fmtICMPType(_ *Format, b []byte, f *nfcap.Flow) []byte {
	t, _ := icmpTypeCode(f)
	return appendUintW(b, uint64(t), 6)
}

func fmtICMPCode(_ *Format, b []byte, f *nfcap.Flow) []byte {
	_, c := icmpTypeCode(f)
	return appendUintW(b, uint64(c), 6)
}

func fmtSrcAS(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(f.SrcAS), 6) }
func fmtDstAS(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(f.DstAS), 6) }

func fmtNextAS(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(append(b, ' '), uint64(f.NextAdjacentAS), 6)
}

func fmtPrevAS(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(append(b, ' '), uint64(f.PrevAdjacentAS), 6)
}

func fmtInput(_ *Format, b []byte, f *nfcap.Flow) []byte  { return appendUintW(b, uint64(f.Input), 6) }
func fmtOutput(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(f.Output), 6) }

func fmtInPackets(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return appendNumber8(b, f.InPackets, fm.plain)
}

func fmtOutPackets(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return appendNumber8(b, f.OutPackets, fm.plain)
}

func fmtInBytes(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return appendNumber8(b, f.InBytes, fm.plain)
}

func fmtOutBytes(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return appendNumber8(b, f.OutBytes, fm.plain)
}

// aggrFlows is nfdump 1.7.1's aggr_flows: the EXcntFlow count, or 1 when
// the record has none or it is 0.
func aggrFlows(f *nfcap.Flow) uint64 { return f.AggrFlows() }

func fmtFlows(fm *Format, b []byte, f *nfcap.Flow) []byte {
	if fm.tunnel {
		return appendUintW(b, 0, 5)
	}
	return appendUintW(b, aggrFlows(f), 5)
}

func fmtFlags(_ *Format, b []byte, f *nfcap.Flow) []byte {
	flags := f.TCPFlags
	if f.Proto != nfcap.ProtoTCP {
		flags = 0
	}
	return appendTCPFlags(b, flags)
}

func fmtTos(_ *Format, b []byte, f *nfcap.Flow) []byte    { return appendUintW(b, uint64(f.SrcTos), 3) }
func fmtSrcTos(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(f.SrcTos), 4) }
func fmtDstTos(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(f.DstTos), 4) }

func fmtDir(_ *Format, b []byte, f *nfcap.Flow) []byte {
	if f.Dir != 0 {
		return append(b, "  E"...)
	}
	return append(b, "  I"...)
}

func fmtSrcMask(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.SrcMask), 5)
}
func fmtDstMask(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.DstMask), 5)
}
func fmtFwd(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(f.FwdStatus), 3) }
func fmtBiFlowDir(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.BiFlowDir), 3)
}
func fmtEndReason(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.EndReason), 3)
}

// nfdump 1.7.1 keeps VLAN ids in 16 bits.
func fmtSrcVlan(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(uint16(f.SrcVlan)), 5)
}
func fmtDstVlan(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(uint16(f.DstVlan)), 5)
}

// appendMAC appends the low 48 bits of v as aa:bb:cc:dd:ee:ff (most
// significant byte first).
func appendMAC(b []byte, v uint64) []byte {
	const hex = "0123456789abcdef"
	for i := 5; i >= 0; i-- {
		x := byte(v >> (8 * uint(i)))
		b = append(b, hex[x>>4], hex[x&15])
		if i > 0 {
			b = append(b, ':')
		}
	}
	return b
}

func macFunc(get func(*nfcap.Flow) uint64) appendFunc {
	return func(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendMAC(b, get(f)) }
}

// appendMPLS appends one label as "%8u-%1u-%1u": label, experimental bits,
// bottom-of-stack bit.
func appendMPLS(b []byte, l uint32) []byte {
	b = appendUintW(b, uint64(l>>4), 8)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64((l&0xf)>>1), 10)
	b = append(b, '-')
	return strconv.AppendUint(b, uint64(l&1), 10)
}

func mplsFunc(i int) appendFunc {
	return func(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendMPLS(b, f.MPLSLabels[i]) }
}

func fmtMPLSAll(_ *Format, b []byte, f *nfcap.Flow) []byte {
	for _, l := range f.MPLSLabels {
		b = appendMPLS(b, l)
		b = append(b, ' ')
	}
	return b
}

func fmtBps(fm *Format, b []byte, f *nfcap.Flow) []byte {
	var bps uint64
	if d := duration(f.MsecFirst, f.MsecLast); d != 0 {
		bps = cvtUint64(float64(f.InBytes<<3) / d)
	}
	return appendNumber8(b, bps, fm.plain)
}

func fmtPps(fm *Format, b []byte, f *nfcap.Flow) []byte {
	var pps uint64
	if d := duration(f.MsecFirst, f.MsecLast); d != 0 {
		pps = cvtUint64(float64(f.InPackets) / d)
	}
	return appendNumber8(b, pps, fm.plain)
}

func fmtBpp(_ *Format, b []byte, f *nfcap.Flow) []byte {
	var bpp uint32
	if f.InPackets != 0 {
		bpp = uint32(f.InBytes / f.InPackets)
	}
	return appendUintW(b, uint64(bpp), 6)
}

func fmtEngine(_ *Format, b []byte, f *nfcap.Flow) []byte {
	b = appendUintW(b, uint64(f.EngineType), 3)
	b = append(b, '/')
	return appendUintL(b, uint64(f.EngineID), 3)
}

// fmtLabel prints the EXlabel element, or "<none>".
func fmtLabel(_ *Format, b []byte, f *nfcap.Flow) []byte {
	start := len(b)
	if f.Has(nfcap.ElemLabel) {
		b = append(b, f.Label...)
	} else {
		b = append(b, "<none>"...)
	}
	return rjust(b, start, 16)
}

func fmtNewline(_ *Format, b []byte, _ *nfcap.Flow) []byte { return append(b, '\n') }

func fmtObsDomain(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendHexZ(append(b, "0x"...), uint64(f.ObservationDomainID), 9)
}

func fmtObsPoint(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendHexZ(append(b, "0x"...), f.ObservationPointID, 10)
}

func fmtIngressVrf(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.IngressVrf), 10)
}

func fmtEgressVrf(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.EgressVrf), 10)
}

func fmtConnID(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.ConnID), 10)
}

// eventTime is nfdump's msecEvent: from EXnselCommon or EXnelCommon,
// whichever comes last.
func eventTime(f *nfcap.Flow) uint64 {
	if lastElement(f, nfcap.ElemNSELCommon, nfcap.ElemNELCommon) == nfcap.ElemNSELCommon {
		return f.MsecEvent
	}
	return f.NelMsecEvent
}

func fmtEventTime(fm *Format, b []byte, f *nfcap.Flow) []byte {
	return fm.tOther.appendMsecTime(b, eventTime(f), fm.loc)
}

// lastElement returns whichever of the element ids a and b comes last in
// the record (nfdump expands elements in order, so the last one wins where
// two elements fill the same field), or 0 if neither is present.
func lastElement(f *nfcap.Flow, a, b uint16) uint16 {
	ha, hb := f.Has(a), f.Has(b)
	switch {
	case ha && !hb:
		return a
	case hb && !ha:
		return b
	case !ha && !hb:
		return 0
	}
	var last uint16
	raw := f.Raw
	p := nfcap.V3HeaderSize
	for i := 0; i < int(f.NumElements) && p+nfcap.ElementHeaderSize <= len(raw); i++ {
		id := uint16(raw[p]) | uint16(raw[p+1])<<8
		l := int(raw[p+2]) | int(raw[p+3])<<8
		if id == a || id == b {
			last = id
		}
		if l < nfcap.ElementHeaderSize {
			break
		}
		p += l
	}
	return last
}

// eventCode is nfdump's event: the firewall event of EXnselCommon or the
// NAT event of EXnelCommon, whichever comes last.
func eventCode(f *nfcap.Flow) uint8 {
	if lastElement(f, nfcap.ElemNSELCommon, nfcap.ElemNELCommon) == nfcap.ElemNSELCommon {
		return f.FwEvent
	}
	return f.NatEvent
}

// fmtEvent prints the event in 7 columns: with the NSEL firewall event
// names when the record has an extended event (fwXevent != 0), else with
// the NAT event names. nfdump 1.7.1 ignores -N here.
func fmtEvent(_ *Format, b []byte, f *nfcap.Flow) []byte {
	start := len(b)
	if f.FwXEvent != 0 {
		b = append(b, fwEventName(eventCode(f))...)
	} else {
		b = append(b, natEventName(eventCode(f))...)
	}
	return rjust(b, start, 7)
}

func fmtXEvent(_ *Format, b []byte, f *nfcap.Flow) []byte {
	start := len(b)
	b = appendFwXEvent(b, f.FwXEvent)
	return rjust(b, start, 7)
}

// fmtSGT prints the security group tag, which nfdump 1.7.1 never fills.
func fmtSGT(_ *Format, b []byte, _ *nfcap.Flow) []byte { return appendUintW(b, 0, 5) }

func fmtMsecEvent(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, eventTime(f), 13)
}

func fmtIngressACL(_ *Format, b []byte, f *nfcap.Flow) []byte {
	for i, v := range f.IngressACL {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendHexL(append(b, "0x"...), uint64(v), 8)
	}
	return b
}

func fmtEgressACL(_ *Format, b []byte, f *nfcap.Flow) []byte {
	for i, v := range f.EgressACL {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendUintW(b, uint64(v), 10)
	}
	return b
}

func fmtXlateSrcAddr(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, f.XlateSrcAddr)
	return b
}

func fmtXlateDstAddr(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, _ = fm.appendAddrCol(b, f.XlateDstAddr)
	return b
}

func fmtXlateSrcPort(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.XlateSrcPort), 6)
}

func fmtXlateDstPort(_ *Format, b []byte, f *nfcap.Flow) []byte {
	return appendUintW(b, uint64(f.XlateDstPort), 6)
}

func fmtXlateSrcAddrPort(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, v6 := fm.appendAddrCol(b, f.XlateSrcAddr)
	b = appendPortSep(b, v6)
	return appendUintL(b, uint64(f.XlateSrcPort), 5)
}

func fmtXlateDstAddrPort(fm *Format, b []byte, f *nfcap.Flow) []byte {
	b, v6 := fm.appendAddrCol(b, f.XlateDstAddr)
	b = appendPortSep(b, v6)
	return appendUintL(b, uint64(f.XlateDstPort), 5)
}

// EmptyUsername is what nfdump 1.7.1 prints for %uname when a record has
// no username element or an empty name.
const EmptyUsername = "<empty>"

func fmtUsername(_ *Format, b []byte, f *nfcap.Flow) []byte {
	if f.Username == "" {
		return append(b, EmptyUsername...)
	}
	return append(b, f.Username...)
}

func u16Func(width int, get func(*nfcap.Flow) uint16) appendFunc {
	return func(_ *Format, b []byte, f *nfcap.Flow) []byte { return appendUintW(b, uint64(get(f)), width) }
}

func latencyFunc(get func(*nfcap.Flow) uint64) appendFunc {
	return func(_ *Format, b []byte, f *nfcap.Flow) []byte {
		return appendFloatW(b, float64(get(f))/1000.0, 3, 9)
	}
}
