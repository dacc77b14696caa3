package flowfmt

import (
	"encoding/hex"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/netdumper/netdumper/nfcap"
)

// jsonTime is RFC 3339 with milliseconds and the zone offset ("Z" in UTC).
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

type jsonWriter struct {
	b     []byte
	first bool
}

func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) raw(k string, v []byte) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = hex.AppendEncode(w.b, v)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) addr(k string, a netip.Addr) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b, _ = appendAddr(w.b, a)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) time(k string, msec uint64, loc *time.Location) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = time.UnixMilli(int64(msec)).In(loc).AppendFormat(w.b, jsonTime)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) uints(k string, vs []uint32) {
	w.key(k)
	w.b = append(w.b, '[')
	for i, v := range vs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = strconv.AppendUint(w.b, uint64(v), 10)
	}
	w.b = append(w.b, ']')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// protoName is the protocol name nfdump prints, without padding.
func protoName(b []byte, p uint8) []byte {
	if int(p) < len(protoNames) {
		return append(b, protoNames[p]...)
	}
	return strconv.AppendUint(b, uint64(p), 10)
}

// appendJSON writes one NDJSON object; see the package documentation for
// the schema. Elements the record does not carry are left out, except the
// basic flow fields, which are always present.
func (fm *Format) appendJSON(b []byte, f *nfcap.Flow) []byte {
	w := jsonWriter{b: append(b, '{'), first: true}
	if f.Flags&nfcap.FlagEvent != 0 {
		w.str("type", "event")
	} else {
		w.str("type", "flow")
	}
	w.time("first", f.MsecFirst, fm.loc)
	w.time("last", f.MsecLast, fm.loc)
	w.time("received", f.MsecReceived, fm.loc)
	w.int("duration_ms", int64(f.MsecLast-f.MsecFirst))
	w.uint("proto", uint64(f.Proto))
	w.key("proto_name")
	w.b = append(w.b, '"')
	w.b = protoName(w.b, f.Proto)
	w.b = append(w.b, '"')
	w.addr("src_addr", f.SrcAddr)
	w.addr("dst_addr", f.DstAddr)
	w.uint("src_port", uint64(f.SrcPort))
	w.uint("dst_port", uint64(f.DstPort))
	if f.IsICMP() {
		w.uint("icmp_type", uint64(f.ICMPType()))
		w.uint("icmp_code", uint64(f.ICMPCode()))
	}
	w.uint("in_packets", f.InPackets)
	w.uint("in_bytes", f.InBytes)
	w.uint("out_packets", f.OutPackets)
	w.uint("out_bytes", f.OutBytes)
	w.uint("flows", aggrFlows(f))
	w.key("tcp_flags")
	w.b = append(w.b, '"')
	w.b = appendTCPFlags(w.b, f.TCPFlags)
	w.b = append(w.b, '"')
	w.uint("tcp_flags_bits", uint64(f.TCPFlags))
	w.uint("src_tos", uint64(f.SrcTos))
	w.uint("fwd_status", uint64(f.FwdStatus))
	w.uint("engine_type", uint64(f.EngineType))
	w.uint("engine_id", uint64(f.EngineID))
	w.uint("exporter_id", uint64(f.ExporterID))
	w.uint("nf_version", uint64(f.NfVersion))
	w.uint("record_flags", uint64(f.Flags))

	if f.Has(nfcap.ElemFlowMisc) {
		w.uint("input", uint64(f.Input))
		w.uint("output", uint64(f.Output))
		w.uint("src_mask", uint64(f.SrcMask))
		w.uint("dst_mask", uint64(f.DstMask))
		w.uint("direction", uint64(f.Dir))
		w.uint("dst_tos", uint64(f.DstTos))
		w.uint("biflow_dir", uint64(f.BiFlowDir))
		w.uint("end_reason", uint64(f.EndReason))
		w.uint("rev_tcp_flags", uint64(f.RevTCPFlags))
	}
	if f.Has(nfcap.ElemVLAN) {
		w.uint("src_vlan", uint64(f.SrcVlan))
		w.uint("dst_vlan", uint64(f.DstVlan))
	}
	if f.Has(nfcap.ElemASRouting) {
		w.uint("src_as", uint64(f.SrcAS))
		w.uint("dst_as", uint64(f.DstAS))
	}
	if f.Has(nfcap.ElemASAdjacent) {
		w.uint("next_as", uint64(f.NextAdjacentAS))
		w.uint("prev_as", uint64(f.PrevAdjacentAS))
	}
	if f.Has(nfcap.ElemBGPNextHopV4) || f.Has(nfcap.ElemBGPNextHopV6) {
		w.addr("bgp_next_hop", f.BGPNextHop)
	}
	if f.Has(nfcap.ElemIPNextHopV4) || f.Has(nfcap.ElemIPNextHopV6) {
		w.addr("next_hop", f.NextHop)
	}
	if f.Has(nfcap.ElemIPReceivedV4) || f.Has(nfcap.ElemIPReceivedV6) {
		w.addr("router_addr", f.Received)
	}
	if f.Has(nfcap.ElemMPLSLabel) {
		w.uints("mpls_labels", f.MPLSLabels[:])
	}
	if f.Has(nfcap.ElemMACAddr) {
		for _, m := range [...]struct {
			k string
			v uint64
		}{{"in_src_mac", f.InSrcMAC}, {"out_dst_mac", f.OutDstMAC}, {"in_dst_mac", f.InDstMAC}, {"out_src_mac", f.OutSrcMAC}} {
			w.key(m.k)
			w.b = append(w.b, '"')
			w.b = appendMAC(w.b, m.v)
			w.b = append(w.b, '"')
		}
	}
	if f.Has(nfcap.ElemLatency) {
		w.uint("client_latency_us", f.ClientLatency)
		w.uint("server_latency_us", f.ServerLatency)
		w.uint("app_latency_us", f.AppLatency)
	}
	if f.Has(nfcap.ElemSamplerInfo) {
		w.int("sampler_id", int64(f.SamplerID))
		w.uint("sampler_interval", uint64(f.SamplerInterval))
		w.uint("sampler_mode", uint64(f.SamplerMode))
		w.uint("sampler_sysid", uint64(f.SamplerSysID))
	}
	if f.Has(nfcap.ElemNSELCommon) {
		w.time("event_time", f.MsecEvent, fm.loc)
		w.uint("conn_id", uint64(f.ConnID))
		w.uint("fw_event", uint64(f.FwEvent))
		w.uint("fw_xevent", uint64(f.FwXEvent))
	}
	if f.Has(nfcap.ElemNSELXlateIPv4) || f.Has(nfcap.ElemNSELXlateIPv6) {
		w.addr("xlate_src_addr", f.XlateSrcAddr)
		w.addr("xlate_dst_addr", f.XlateDstAddr)
	}
	if f.Has(nfcap.ElemNSELXlatePort) {
		w.uint("xlate_src_port", uint64(f.XlateSrcPort))
		w.uint("xlate_dst_port", uint64(f.XlateDstPort))
	}
	if f.Has(nfcap.ElemNSELACL) {
		w.uints("ingress_acl", f.IngressACL[:])
		w.uints("egress_acl", f.EgressACL[:])
	}
	if f.HasUsername() {
		w.str("username", f.Username)
	}
	if f.Has(nfcap.ElemNELCommon) {
		w.time("nat_event_time", f.NelMsecEvent, fm.loc)
		w.uint("nat_pool_id", uint64(f.NatPoolID))
		w.uint("nat_event", uint64(f.NatEvent))
	}
	if f.Has(nfcap.ElemNELCommon) || f.Has(nfcap.ElemVrf) {
		w.uint("ingress_vrf", uint64(f.IngressVrf))
		w.uint("egress_vrf", uint64(f.EgressVrf))
	}
	if f.Has(nfcap.ElemNELXlatePort) {
		w.uint("port_block_start", uint64(f.BlockStart))
		w.uint("port_block_end", uint64(f.BlockEnd))
		w.uint("port_block_step", uint64(f.BlockStep))
		w.uint("port_block_size", uint64(f.BlockSize))
	}
	if f.Has(nfcap.ElemNbarApp) {
		w.raw("nbar_app_id", f.NbarAppID)
	}
	if f.Has(nfcap.ElemLabel) {
		w.str("label", f.Label)
	}
	if f.Has(nfcap.ElemInPayload) {
		w.raw("in_payload", f.InPayload)
	}
	if f.Has(nfcap.ElemOutPayload) {
		w.raw("out_payload", f.OutPayload)
	}
	if f.Has(nfcap.ElemTunIPv4) || f.Has(nfcap.ElemTunIPv6) {
		w.addr("tunnel_src_addr", f.TunSrcAddr)
		w.addr("tunnel_dst_addr", f.TunDstAddr)
		w.uint("tunnel_proto", uint64(f.TunProto))
	}
	if f.Has(nfcap.ElemObservation) {
		w.uint("observation_point_id", f.ObservationPointID)
		w.uint("observation_domain_id", uint64(f.ObservationDomainID))
	}
	if f.Has(nfcap.ElemIfName) {
		w.uint("if_name_ingress", uint64(f.IfNameIngress))
		w.str("if_name", f.IfName)
	}
	if f.Has(nfcap.ElemVrfName) {
		w.uint("vrf_name_ingress", uint64(f.VrfNameIngress))
		w.str("vrf_name", f.VrfName)
	}
	if f.Has(nfcap.ElemPfInfo) {
		w.uint("pf_action", uint64(f.PfAction))
		w.uint("pf_reason", uint64(f.PfReason))
		w.uint("pf_dir", uint64(f.PfDir))
		w.uint("pf_rewritten", uint64(f.PfRewritten))
		w.uint("pf_rule", uint64(f.PfRuleNr))
		w.uint("pf_subrule", uint64(f.PfSubRuleNr))
		w.uint("pf_uid", uint64(f.PfUID))
		w.uint("pf_pid", uint64(f.PfPID))
		w.str("pf_ifname", f.PfIfName)
	}
	w.key("elements")
	w.b = append(w.b, '[')
	n := 0
	for id := uint16(0); id < 64; id++ {
		if f.Has(id) {
			if n > 0 {
				w.b = append(w.b, ',')
			}
			w.b = strconv.AppendUint(w.b, uint64(id), 10)
			n++
		}
	}
	w.b = append(w.b, ']')
	if len(f.Unknown) > 0 {
		w.key("unknown_elements")
		w.b = append(w.b, '[')
		for i, u := range f.Unknown {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, `{"id":`...)
			w.b = strconv.AppendUint(w.b, uint64(u.ID), 10)
			w.b = append(w.b, `,"data":"`...)
			w.b = hex.AppendEncode(w.b, u.Data)
			w.b = append(w.b, `"}`...)
		}
		w.b = append(w.b, ']')
	}
	return append(w.b, '}', '\n')
}
