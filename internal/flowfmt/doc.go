// Package flowfmt formats nfcap flow records exactly as nfdump 1.7.1
// (Debian's NSEL-NEL build) prints them.
//
// A Format is compiled once with Parse and then appends records to a
// caller-owned buffer with AppendRecord, without allocating:
//
//	fm, err := flowfmt.Parse("fmt:%line %uname", flowfmt.Options{})
//	fmt.Println(fm.Header())
//	buf = fm.AppendRecord(buf[:0], flow)
//
// # Text formats
//
// Parse accepts nfdump's predefined names line, long, extended, biline,
// bilong, nsel and nel (a trailing "6" selects full IPv6 addresses, as
// "line6"), and "fmt:" strings made of literal text and %tokens. Every token
// of nfdump 1.7.1 is understood; all are printed except those that need
// nfdump's geo database, interface/VRF/nbar name tables or payload decoding
// (%gsa %gda %gsap %gdap %sc %dc %sloc %dloc %inam %onam %ivrfnam %evrfnam
// %nbid %nbnam %ipl %opl %ja3 %sni), which Parse rejects with ErrSyntax.
// The output of the others is byte-identical to `nfdump -q -o FORMAT`,
// including nfdump's quirks, which the tests pin down against the real
// binary:
//
//   - IPv6 addresses in 16-wide columns are shortened to their first and
//     last 7 characters joined by ".." (2001:db..10:cf54); addresses are
//     written as glibc's inet_ntop does.
//   - Counters of one million and more are scaled with decimal units
//     ("1.2 M", "3.0 G", "4.5 T") unless Options.Plain (nfdump -N).
//   - ICMP destination ports print as "type.code".
//   - %uname prints "<empty>" for a missing or empty username.
//   - Times use Options.Location (time.Local by default, which follows $TZ
//     like nfdump's localtime()); a time of 0 prints as 1970-01-01.
//   - A flow that ends before it starts has a duration of about 2^64 ms,
//     printed as "-2147483648d -2147483648:-2147483648:..." like nfdump.
//   - %tos is 3 wide (its title says "Tos"), VLAN ids are cut to 16 bits,
//     %ter prints only two digits of the milliseconds, %evt uses the
//     firewall event names only when an extended event is set, and
//     tunnelled flows get an extra line with the tunnel endpoints.
//
// Header returns the title line nfdump prints before the records (without
// -q). Columns and AppendColumn expose the individual columns for callers
// that lay them out themselves.
//
// # CSV
//
// "csv" is nfdump 1.7.1's fixed "-o csv" layout: the header
//
//	ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,
//	smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1..mpls10,
//	cl,sl,al,ra,eng,exid,tr
//
// (one line), then one line per record with times to the second (tr to the
// millisecond), full addresses, the raw destination port (ICMP type*256 +
// code) and unscaled counters. It is byte-identical to `nfdump -q -o csv`,
// including its bug of printing the IP next hop in the nhb column when the
// BGP next hop is IPv6. After the records nfdump prints a CSV summary
// (Summary.AppendCSV).
//
// # JSON
//
// "json" (or "ndjson") writes one JSON object per line per record. It is
// netdumper's own schema, not nfdump's "-o json" (which is an indented
// array). Addresses are text (as in nfdump's CSV), times are RFC 3339 with
// milliseconds in Options.Location, counters are JSON numbers (exact
// integers; consumers that parse numbers as float64 lose precision above
// 2^53). These keys are always present:
//
//	type          "flow", or "event" for NSEL/NEL event records
//	first, last   first and last seen
//	received      when the collector received the record
//	duration_ms   last - first in milliseconds (negative if reversed)
//	proto         IP protocol number; proto_name is nfdump's abbreviation
//	src_addr, dst_addr, src_port, dst_port
//	icmp_type, icmp_code   only for ICMP and ICMPv6 (from dst_port)
//	in_packets, in_bytes, out_packets, out_bytes
//	flows         aggregated flow count (1 when the record has none)
//	tcp_flags     "CEUAPRSF" with '.' for unset bits; tcp_flags_bits the number
//	src_tos, fwd_status
//	engine_type, engine_id, exporter_id, nf_version, record_flags
//	elements      the element ids the record carries
//
// The other keys appear only when the record carries the element:
//
//	input output src_mask dst_mask direction dst_tos biflow_dir
//	  end_reason rev_tcp_flags                        (EXflowMisc, 4)
//	src_vlan dst_vlan                                 (EXvLan, 6)
//	src_as dst_as                                     (EXasRouting, 7)
//	next_as prev_as                                   (EXasAdjacent, 16)
//	bgp_next_hop                                      (8, 9)
//	next_hop                                          (10, 11)
//	router_addr   exporter address                    (12, 13)
//	mpls_labels   10 raw label words                  (14)
//	in_src_mac out_dst_mac in_dst_mac out_src_mac     (15)
//	client_latency_us server_latency_us app_latency_us (17)
//	sampler_id sampler_interval sampler_mode sampler_sysid (18)
//	event_time conn_id fw_event fw_xevent             (EXnselCommon, 19)
//	xlate_src_addr xlate_dst_addr                     (20, 21)
//	xlate_src_port xlate_dst_port                     (22)
//	ingress_acl egress_acl  3 words each              (23)
//	username      the stored name, "" when empty      (EXnselUser, 24)
//	nat_event_time nat_pool_id nat_event              (EXnelCommon, 25)
//	ingress_vrf egress_vrf                            (25 old layout, 36)
//	port_block_start port_block_end port_block_step port_block_size (26)
//	nbar_app_id in_payload out_payload  hex strings   (27, 29, 30)
//	label                                             (28)
//	tunnel_src_addr tunnel_dst_addr tunnel_proto      (31, 32)
//	observation_point_id observation_domain_id        (33)
//	if_name_ingress if_name, vrf_name_ingress vrf_name (34, 35)
//	pf_action pf_reason pf_dir pf_rewritten pf_rule pf_subrule pf_uid
//	  pf_pid pf_ifname                                (37)
//	unknown_elements  [{"id":N,"data":"hex"}] for ids nfdump 1.7.1 does not know
//
// Strings are escaped as JSON requires; bytes that are not UTF-8 become
// U+FFFD.
//
// # Summary
//
// Summary reproduces the lines nfdump prints after the records without -q
// ("Summary: ...", "Time window: ...", "Total flows processed: ..."), except
// the final timing line ("Sys: ... Wall: ..."), which changes on every run.
package flowfmt
