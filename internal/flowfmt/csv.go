package flowfmt

import (
	"strconv"

	"github.com/netdumper/netdumper/nfcap"
)

// csvHeader is the header line of nfdump 1.7.1's "-o csv".
const csvHeader = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr"

func appendCSVUint(b []byte, v uint64) []byte {
	return strconv.AppendUint(append(b, ','), v, 10)
}

// appendCSV writes one record in nfdump 1.7.1's fixed CSV layout: times
// without milliseconds (except tr), full addresses, raw destination port,
// unscaled counters.
func (fm *Format) appendCSV(b []byte, f *nfcap.Flow) []byte {
	b = fm.tFirst.appendDateTime(b, int64(f.MsecFirst/1000), fm.loc)
	b = append(b, ',')
	b = fm.tLast.appendDateTime(b, int64(f.MsecLast/1000), fm.loc)
	b = append(b, ',')
	b = strconv.AppendFloat(b, duration(f.MsecFirst, f.MsecLast), 'f', 3, 64)
	b = append(b, ',')
	b, _ = appendAddr(b, f.SrcAddr)
	b = append(b, ',')
	b, _ = appendAddr(b, f.DstAddr)
	b = appendCSVUint(b, uint64(f.SrcPort))
	b = appendCSVUint(b, uint64(f.DstPort))
	b = append(b, ',')
	b = appendProto(b, f.Proto, fm.plain)
	b = append(b, ',')
	b = appendTCPFlags(b, f.TCPFlags)
	b = appendCSVUint(b, uint64(f.FwdStatus))
	b = appendCSVUint(b, uint64(f.SrcTos))
	b = appendCSVUint(b, f.InPackets)
	b = appendCSVUint(b, f.InBytes)
	b = appendCSVUint(b, f.OutPackets)
	b = appendCSVUint(b, f.OutBytes)
	b = appendCSVUint(b, uint64(f.Input))
	b = appendCSVUint(b, uint64(f.Output))
	b = appendCSVUint(b, uint64(f.SrcAS))
	b = appendCSVUint(b, uint64(f.DstAS))
	b = appendCSVUint(b, uint64(f.SrcMask))
	b = appendCSVUint(b, uint64(f.DstMask))
	b = appendCSVUint(b, uint64(f.DstTos))
	b = appendCSVUint(b, uint64(f.Dir))
	b = append(b, ',')
	b, _ = appendAddr(b, f.NextHop)
	b = append(b, ',')
	b = appendCSVBGPNextHop(b, f)
	b = appendCSVUint(b, uint64(uint16(f.SrcVlan)))
	b = appendCSVUint(b, uint64(uint16(f.DstVlan)))
	for _, m := range [...]uint64{f.InSrcMAC, f.OutDstMAC, f.InDstMAC, f.OutSrcMAC} {
		b = appendMAC(append(b, ','), m)
	}
	for _, l := range f.MPLSLabels {
		b = strconv.AppendUint(append(b, ','), uint64(l>>4), 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64((l&0xf)>>1), 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(l&1), 10)
	}
	for _, l := range [...]uint64{f.ClientLatency, f.ServerLatency, f.AppLatency} {
		b = appendFloatW(append(b, ','), float64(l)/1000.0, 3, 9)
	}
	b = append(b, ',')
	b, _ = appendAddr(b, f.Received)
	b = appendCSVUint(b, uint64(f.EngineType))
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(f.EngineID), 10)
	b = appendCSVUint(b, uint64(f.ExporterID))
	b = append(b, ',')
	b = fm.tOther.appendMsecTime(b, f.MsecReceived, fm.loc)
	return append(b, '\n')
}

// appendCSVBGPNextHop reproduces an nfdump 1.7.1 CSV bug: for an IPv6 BGP
// next hop it prints the IP next-hop field (in its IPv6 form, where an IPv4
// next hop sits in bytes 8..11) instead.
func appendCSVBGPNextHop(b []byte, f *nfcap.Flow) []byte {
	if !f.BGPNextHop.Is6() {
		b, _ = appendAddr(b, f.BGPNextHop)
		return b
	}
	var a [16]byte
	switch {
	case f.NextHop.Is6():
		a = f.NextHop.As16()
	case f.NextHop.Is4():
		v4 := f.NextHop.As4()
		copy(a[8:12], v4[:])
	}
	return appendIPv6(b, a)
}
