package nfcap

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// IP protocol numbers used by the stat counters and the output formats.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Flags of the V3 record header.
const (
	FlagEvent   = 1 // NSEL/NEL event record
	FlagSampled = 2 // counters already scaled by the sampling rate
	FlagAnon    = 4 // addresses anonymised
)

// RawElement is an element this package does not decode, kept as stored.
type RawElement struct {
	ID   uint16
	Data []byte // element data after the 4-byte header; aliases the record
}

// Flow is a decoded V3 flow record. Fields of elements the record does not
// carry are zero; Has reports which elements were present.
//
// Slices and Raw alias the block buffer: they are valid only until the
// reader moves to the next block. Copy what must outlive that.
type Flow struct {
	// Record header.
	EngineType uint8
	EngineID   uint8
	ExporterID uint16 // sysid of an exporter info record
	Flags      uint8  // FlagEvent, FlagSampled, FlagAnon
	NfVersion  uint8  // 5, 9, 10 (IPFIX) ... of the exporter

	// EXgenericFlow (1). Times are milliseconds since the Unix epoch.
	MsecFirst    uint64
	MsecLast     uint64
	MsecReceived uint64
	InPackets    uint64
	InBytes      uint64
	SrcPort      uint16
	DstPort      uint16 // ICMP: type<<8 | code
	Proto        uint8
	TCPFlags     uint8
	FwdStatus    uint8
	SrcTos       uint8

	// EXipv4Flow (2) or EXipv6Flow (3).
	SrcAddr netip.Addr
	DstAddr netip.Addr

	// EXflowMisc (4).
	Input       uint32
	Output      uint32
	SrcMask     uint8
	DstMask     uint8
	Dir         uint8
	DstTos      uint8
	BiFlowDir   uint8
	EndReason   uint8
	RevTCPFlags uint8

	// EXcntFlow (5). Use AggrFlows for the flow count nfdump prints.
	Flows      uint64
	OutPackets uint64
	OutBytes   uint64

	// EXvLan (6), EXasRouting (7), EXasAdjacent (16).
	SrcVlan        uint32
	DstVlan        uint32
	SrcAS          uint32
	DstAS          uint32
	NextAdjacentAS uint32
	PrevAdjacentAS uint32

	// EXbgpNextHopV4/V6 (8, 9), EXipNextHopV4/V6 (10, 11),
	// EXipReceivedV4/V6 (12, 13).
	BGPNextHop netip.Addr
	NextHop    netip.Addr
	Received   netip.Addr // address of the exporter the record came from

	// EXmplsLabel (14), EXmacAddr (15), EXlatency (17, microseconds).
	MPLSLabels    [10]uint32
	InSrcMAC      uint64
	OutDstMAC     uint64
	InDstMAC      uint64
	OutSrcMAC     uint64
	ClientLatency uint64
	ServerLatency uint64
	AppLatency    uint64

	// EXsamplerInfo (18).
	SamplerID       int32
	SamplerInterval uint32
	SamplerMode     uint16
	SamplerSysID    uint16

	// EXnselCommon (19), EXnselXlate* (20-22), EXnselAcl (23).
	MsecEvent    uint64
	ConnID       uint32
	FwXEvent     uint16
	FwEvent      uint8
	XlateSrcAddr netip.Addr
	XlateDstAddr netip.Addr
	XlateSrcPort uint16
	XlateDstPort uint16
	IngressACL   [3]uint32
	EgressACL    [3]uint32

	// EXnselUser (24): the NUL-terminated name, as stored.
	Username string

	// EXnelCommon (25), EXnelXlatePort (26).
	NelMsecEvent uint64
	NatPoolID    uint32
	NatEvent     uint8
	EgressVrf    uint32 // also EXvrf (36)
	IngressVrf   uint32 // also EXvrf (36)
	BlockStart   uint16
	BlockEnd     uint16
	BlockStep    uint16
	BlockSize    uint16

	// Variable elements: EXnbarApp (27), EXlabel (28), payloads (29, 30).
	NbarAppID  []byte
	Label      string
	InPayload  []byte
	OutPayload []byte

	// EXtunIPv4/V6 (31, 32), EXobservation (33).
	TunSrcAddr          netip.Addr
	TunDstAddr          netip.Addr
	TunProto            uint32
	ObservationPointID  uint64
	ObservationDomainID uint32

	// EXifname (34), EXvrfname (35) in their 1.7.1 meaning.
	IfNameIngress  uint32
	IfName         string
	VrfNameIngress uint32
	VrfName        string

	// EXpfinfo (37).
	PfAction    uint8
	PfReason    uint8
	PfDir       uint8
	PfRewritten uint8
	PfRuleNr    uint32
	PfSubRuleNr uint32
	PfUID       uint32
	PfPID       uint32
	PfIfName    string

	// Elements is a bit set of the element ids present (bit n = id n).
	Elements uint64
	// NumElements is the element count from the record header.
	NumElements uint16
	// Unknown holds elements with ids this package does not know.
	Unknown []RawElement
	// Raw is the whole record as stored (header included).
	Raw []byte

	keyOnly bool // filled by decodeFlowKey: only its fields can be set
}

// Has reports whether the record carried element id.
func (f *Flow) Has(id uint16) bool { return id < 64 && f.Elements&(1<<id) != 0 }

// HasUsername reports whether the record carries a username element.
func (f *Flow) HasUsername() bool { return f.Has(ElemNSELUser) }

// First returns the time the flow was first seen.
func (f *Flow) First() time.Time { return time.UnixMilli(int64(f.MsecFirst)) }

// Last returns the time the flow was last seen.
func (f *Flow) Last() time.Time { return time.UnixMilli(int64(f.MsecLast)) }

// AggrFlows returns the number of flows the record stands for: the EXcntFlow
// count, or 1 when the record has none (or it is 0), as nfdump counts.
func (f *Flow) AggrFlows() uint64 {
	if f.Flows == 0 {
		return 1
	}
	return f.Flows
}

// IsICMP reports whether the flow is ICMP or ICMPv6.
func (f *Flow) IsICMP() bool { return f.Proto == ProtoICMP || f.Proto == ProtoICMPv6 }

// ICMPType returns the ICMP type of an ICMP flow (high byte of DstPort).
func (f *Flow) ICMPType() uint8 { return uint8(f.DstPort >> 8) }

// ICMPCode returns the ICMP code of an ICMP flow (low byte of DstPort).
func (f *Flow) ICMPCode() uint8 { return uint8(f.DstPort) }

// reset clears f for reuse, keeping the Unknown slice's storage.
func (f *Flow) reset() {
	unk := f.Unknown[:0]
	*f = Flow{}
	f.Unknown = unk
}

// resetKey clears what decodeFlowKey sets, which is all it has to clear
// when f was last filled by decodeFlowKey too (keyOnly is then set): the
// whole Flow is 800 bytes, and the rewrite decodes a key per record.
func (f *Flow) resetKey() {
	if !f.keyOnly {
		f.reset()
		f.keyOnly = true
		return
	}
	f.EngineType, f.EngineID, f.ExporterID, f.Flags, f.NfVersion = 0, 0, 0, 0, 0
	f.MsecFirst, f.MsecLast, f.MsecReceived, f.InPackets, f.InBytes = 0, 0, 0, 0, 0
	f.SrcPort, f.DstPort, f.Proto, f.TCPFlags, f.FwdStatus, f.SrcTos = 0, 0, 0, 0, 0, 0
	f.SrcAddr, f.DstAddr = netip.Addr{}, netip.Addr{}
	f.Username = ""
	f.Elements, f.NumElements, f.Raw = 0, 0, nil
}

// DecodeFlow decodes a V3 record (header included) into f. It checks the
// record the way nfdump does: size at least 12, every element at least 4
// bytes and inside the record, the lengths adding up to the record size, and
// every known fixed-size element long enough for its fields. On error f is
// partly filled and must not be used.
func DecodeFlow(rec []byte, f *Flow) error {
	if len(rec) >= 2 {
		if t := binary.LittleEndian.Uint16(rec); t != RecordTypeV3 {
			return errf(ErrCorrupt, "record type %d is not a flow record (11)", t)
		}
	}
	return decodeFlow(rec, f, false)
}

// decodeFlowKey is DecodeFlow for the rewrite: it checks the record the
// same way but decodes only the record header, EXgenericFlow, the
// addresses and the username (Elements and NumElements are complete).
// Other fields are zero.
func decodeFlowKey(rec []byte, f *Flow) error { return decodeFlow(rec, f, true) }

// decodeFlow checks a V3 record and decodes its elements: all of them, or
// with keyOnly only those a flow key needs.
func decodeFlow(rec []byte, f *Flow, keyOnly bool) error {
	if keyOnly {
		f.resetKey()
	} else {
		f.reset()
	}
	le := binary.LittleEndian
	if len(rec) < V3HeaderSize {
		return errf(ErrCorrupt, "flow record of %d bytes is shorter than its 12-byte header", len(rec))
	}
	if size := int(le.Uint16(rec[2:])); size != len(rec) {
		return errf(ErrCorrupt, "flow record size field %d does not match its %d bytes", size, len(rec))
	}
	f.Raw = rec
	f.NumElements = le.Uint16(rec[4:])
	f.EngineType = rec[6]
	f.EngineID = rec[7]
	f.ExporterID = le.Uint16(rec[8:])
	f.Flags = rec[10]
	f.NfVersion = rec[11]

	p := V3HeaderSize
	for i := 0; i < int(f.NumElements); i++ {
		if len(rec)-p < ElementHeaderSize {
			return errf(ErrCorrupt, "element %d of %d at record offset %d: header runs past the record end (size %d)", i+1, f.NumElements, p, len(rec))
		}
		id := le.Uint16(rec[p:])
		l := int(le.Uint16(rec[p+2:]))
		if l < ElementHeaderSize || l > len(rec)-p {
			return errf(ErrCorrupt, "element %d of %d (id %d) at record offset %d: length %d runs past the record end (size %d)", i+1, f.NumElements, id, p, l, len(rec))
		}
		if l < minElementSize(id) {
			return errf(ErrCorrupt, "element %d of %d (id %d) at record offset %d: length %d is below the %d bytes of its fields", i+1, f.NumElements, id, p, l, minElementSize(id))
		}
		switch {
		case !keyOnly, id == ElemGenericFlow, id == ElemIPv4Flow, id == ElemIPv6Flow, id == ElemNSELUser:
			f.decodeElement(id, rec[p+ElementHeaderSize:p+l])
		case id < 64:
			f.Elements |= 1 << id
		}
		p += l
	}
	if p != len(rec) {
		return errf(ErrCorrupt, "%d elements end at record offset %d, but the record is %d bytes", f.NumElements, p, len(rec))
	}
	return nil
}

// ipv4 decodes a host-order u32 address.
func ipv4(b []byte) netip.Addr {
	return netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
}

// ipv6 decodes an address stored as two host-order u64 halves.
func ipv6(b []byte) netip.Addr {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], binary.LittleEndian.Uint64(b))
	binary.BigEndian.PutUint64(a[8:], binary.LittleEndian.Uint64(b[8:]))
	return netip.AddrFrom16(a)
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (f *Flow) decodeElement(id uint16, d []byte) {
	le := binary.LittleEndian
	if id < 64 {
		f.Elements |= 1 << id
	}
	switch id {
	case ElemGenericFlow:
		f.MsecFirst = le.Uint64(d[0:])
		f.MsecLast = le.Uint64(d[8:])
		f.MsecReceived = le.Uint64(d[16:])
		f.InPackets = le.Uint64(d[24:])
		f.InBytes = le.Uint64(d[32:])
		f.SrcPort = le.Uint16(d[40:])
		f.DstPort = le.Uint16(d[42:])
		f.Proto = d[44]
		f.TCPFlags = d[45]
		f.FwdStatus = d[46]
		f.SrcTos = d[47]
	case ElemIPv4Flow:
		f.SrcAddr = ipv4(d[0:])
		f.DstAddr = ipv4(d[4:])
	case ElemIPv6Flow:
		f.SrcAddr = ipv6(d[0:])
		f.DstAddr = ipv6(d[16:])
	case ElemFlowMisc:
		f.Input = le.Uint32(d[0:])
		f.Output = le.Uint32(d[4:])
		f.SrcMask, f.DstMask, f.Dir, f.DstTos = d[8], d[9], d[10], d[11]
		f.BiFlowDir, f.EndReason, f.RevTCPFlags = d[12], d[13], d[14]
	case ElemCntFlow:
		f.Flows = le.Uint64(d[0:])
		f.OutPackets = le.Uint64(d[8:])
		f.OutBytes = le.Uint64(d[16:])
	case ElemVLAN:
		f.SrcVlan = le.Uint32(d[0:])
		f.DstVlan = le.Uint32(d[4:])
	case ElemASRouting:
		f.SrcAS = le.Uint32(d[0:])
		f.DstAS = le.Uint32(d[4:])
	case ElemBGPNextHopV4:
		f.BGPNextHop = ipv4(d)
	case ElemBGPNextHopV6:
		f.BGPNextHop = ipv6(d)
	case ElemIPNextHopV4:
		f.NextHop = ipv4(d)
	case ElemIPNextHopV6:
		f.NextHop = ipv6(d)
	case ElemIPReceivedV4:
		f.Received = ipv4(d)
	case ElemIPReceivedV6:
		f.Received = ipv6(d)
	case ElemMPLSLabel:
		for i := range f.MPLSLabels {
			f.MPLSLabels[i] = le.Uint32(d[4*i:])
		}
	case ElemMACAddr:
		f.InSrcMAC = le.Uint64(d[0:])
		f.OutDstMAC = le.Uint64(d[8:])
		f.InDstMAC = le.Uint64(d[16:])
		f.OutSrcMAC = le.Uint64(d[24:])
	case ElemASAdjacent:
		f.NextAdjacentAS = le.Uint32(d[0:])
		f.PrevAdjacentAS = le.Uint32(d[4:])
	case ElemLatency:
		f.ClientLatency = le.Uint64(d[0:])
		f.ServerLatency = le.Uint64(d[8:])
		f.AppLatency = le.Uint64(d[16:])
	case ElemSamplerInfo:
		f.SamplerID = int32(le.Uint32(d[0:]))
		f.SamplerInterval = le.Uint32(d[4:])
		f.SamplerMode = le.Uint16(d[8:])
		f.SamplerSysID = le.Uint16(d[10:])
	case ElemNSELCommon:
		f.MsecEvent = le.Uint64(d[0:])
		f.ConnID = le.Uint32(d[8:])
		f.FwXEvent = le.Uint16(d[12:])
		f.FwEvent = d[14]
	case ElemNSELXlateIPv4:
		f.XlateSrcAddr = ipv4(d[0:])
		f.XlateDstAddr = ipv4(d[4:])
	case ElemNSELXlateIPv6:
		f.XlateSrcAddr = ipv6(d[0:])
		f.XlateDstAddr = ipv6(d[16:])
	case ElemNSELXlatePort:
		f.XlateSrcPort = le.Uint16(d[0:])
		f.XlateDstPort = le.Uint16(d[2:])
	case ElemNSELACL:
		be := binary.BigEndian // the one element stored in network order
		for i := 0; i < 3; i++ {
			f.IngressACL[i] = be.Uint32(d[4*i:])
			f.EgressACL[i] = be.Uint32(d[12+4*i:])
		}
	case ElemNSELUser:
		f.Username = cString(d[:UserNameSize])
	case ElemNELCommon:
		f.NelMsecEvent = le.Uint64(d[0:])
		if len(d) >= 24 { // pre-1.7 layout: egressVrf, ingressVrf before natPoolID
			f.EgressVrf = le.Uint32(d[8:])
			f.IngressVrf = le.Uint32(d[12:])
			f.NatPoolID = le.Uint32(d[16:])
			f.NatEvent = d[20]
		} else {
			f.NatPoolID = le.Uint32(d[8:])
			f.NatEvent = d[12]
		}
	case ElemNELXlatePort:
		f.BlockStart = le.Uint16(d[0:])
		f.BlockEnd = le.Uint16(d[2:])
		f.BlockStep = le.Uint16(d[4:])
		f.BlockSize = le.Uint16(d[6:])
	case ElemNbarApp:
		f.NbarAppID = d
	case ElemLabel:
		f.Label = cString(d)
	case ElemInPayload:
		f.InPayload = d
	case ElemOutPayload:
		f.OutPayload = d
	case ElemTunIPv4:
		f.TunSrcAddr = ipv4(d[0:])
		f.TunDstAddr = ipv4(d[4:])
		f.TunProto = le.Uint32(d[8:])
	case ElemTunIPv6:
		f.TunSrcAddr = ipv6(d[0:])
		f.TunDstAddr = ipv6(d[16:])
		f.TunProto = le.Uint32(d[32:])
	case ElemObservation:
		f.ObservationPointID = le.Uint64(d[0:])
		f.ObservationDomainID = le.Uint32(d[8:])
	case ElemIfName:
		f.IfNameIngress = le.Uint32(d[0:])
		f.IfName = cString(d[4:])
	case ElemVrfName:
		f.VrfNameIngress = le.Uint32(d[0:])
		f.VrfName = cString(d[4:])
	case ElemVrf:
		f.EgressVrf = le.Uint32(d[0:])
		f.IngressVrf = le.Uint32(d[4:])
	case ElemPfInfo:
		f.PfAction, f.PfReason, f.PfDir, f.PfRewritten = d[0], d[1], d[2], d[3]
		f.PfRuleNr = le.Uint32(d[4:])
		f.PfSubRuleNr = le.Uint32(d[8:])
		f.PfUID = le.Uint32(d[12:])
		f.PfPID = le.Uint32(d[16:])
		f.PfIfName = cString(d[20:])
	default:
		f.Unknown = append(f.Unknown, RawElement{ID: id, Data: d})
	}
}
