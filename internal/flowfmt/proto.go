package flowfmt

import "strconv"

// protoNames are the protocol abbreviations nfdump 1.7.1 prints for
// protocols 0..137 (IANA assigned numbers); other numbers print as digits.
var protoNames = [...]string{
	"0", "ICMP", "IGMP", "GGP", "IPIP", "ST", "TCP", "CBT", "EGP", "IGP",
	"BBN", "NVPII", "PUP", "ARGUS", "ENCOM", "XNET", "CHAOS", "UDP", "MUX", "DCN",
	"HMP", "PRM", "XNS", "Trnk1", "Trnk2", "Leaf1", "Leaf2", "RDP", "IRTP", "ISO-4",
	"NETBK", "MFESP", "MEINP", "DCCP", "3PC", "IDPR", "XTP", "DDP", "IDPR", "TP++",
	"IL", "IPv6", "SDRP", "Rte6", "Frag6", "IDRP", "RSVP", "GRE", "MHRP", "BNA",
	"ESP", "AH", "INLSP", "SWIPE", "NARP", "MOBIL", "TLSP", "SKIP", "ICMP6", "NOHE6",
	"OPTS6", "HOST", "CFTP", "NET", "SATNT", "KLAN", "RVD", "IPPC", "FS", "SATM",
	"VISA", "IPCV", "CPNX", "CPHB", "WSN", "PVP", "BSATM", "SUNND", "WBMON", "WBEXP",
	"ISOIP", "VMTP", "SVMTP", "VINES", "TTP", "NSIGP", "DGP", "TCF", "EIGRP", "OSPF",
	"S-RPC", "LARP", "MTP", "AX.25", "OS", "MICP", "SCCSP", "ETHIP", "ENCAP", "99",
	"GMTP", "IFMP", "PNNI", "PIM", "ARIS", "SCPS", "QNX", "A/N", "IPcmp", "SNP",
	"CpqPP", "IPXIP", "VRRP", "PGM", "0hop", "L2TP", "DDX", "IATP", "STP", "SRP",
	"UTI", "SMP", "SM", "PTP", "ISIS4", "FIRE", "CRTP", "CRUDP", "128", "IPLT",
	"SPS", "PIPE", "SCTP", "FC", "134", "MHEAD", "UDP-L", "MPLS",
}

// appendProto appends nfdump's ProtoString: the name, or the number
// left-justified to 5 for unnamed protocols and with plain numbers.
func appendProto(b []byte, proto uint8, plain bool) []byte {
	if int(proto) < len(protoNames) && !plain {
		return append(b, protoNames[proto]...)
	}
	start := len(b)
	b = strconv.AppendUint(b, uint64(proto), 10)
	return ljust(b, start, 5)
}

// appendTCPFlags appends the 8-character flag string "CEUAPRSF" with '.'
// for unset bits.
func appendTCPFlags(b []byte, flags uint8) []byte {
	const names = "CEUAPRSF"
	for i := 0; i < 8; i++ {
		if flags&(0x80>>i) != 0 {
			b = append(b, names[i])
		} else {
			b = append(b, '.')
		}
	}
	return b
}

// fwEventNames are the NSEL firewall event names of nfdump 1.7.1; other
// values print as "UNKNOW" (sic).
var fwEventNames = [...]string{"IGNORE", "CREATE", "DELETE", "DENIED", "ALERT", "UPDATE"}

func fwEventName(e uint8) string {
	if int(e) < len(fwEventNames) {
		return fwEventNames[e]
	}
	return "UNKNOW"
}

// natEventNames are the NAT event names nfdump 1.7.1 knows.
var natEventNames = [...]string{"INVALID", "ADD", "DELETE"}

func natEventName(e uint8) string {
	if int(e) < len(natEventNames) {
		return natEventNames[e]
	}
	return "UNKNOW"
}

// appendFwXEvent appends the NSEL extended event name (EventXString).
func appendFwXEvent(b []byte, x uint16) []byte {
	switch x {
	case 0:
		return append(b, "Ignore"...)
	case 1001:
		return append(b, "I-ACL"...)
	case 1002:
		return append(b, "E-ACL"...)
	case 1003:
		return append(b, "Adap"...)
	case 1004:
		return append(b, "No Syn"...)
	}
	return strconv.AppendUint(b, uint64(x), 10)
}
