package nfcap

// Element ids of V3 flow records (src/lib/nfxV3.h in nfdump 1.7.1).
const (
	ElemNull           = 0
	ElemGenericFlow    = 1
	ElemIPv4Flow       = 2
	ElemIPv6Flow       = 3
	ElemFlowMisc       = 4
	ElemCntFlow        = 5
	ElemVLAN           = 6
	ElemASRouting      = 7
	ElemBGPNextHopV4   = 8
	ElemBGPNextHopV6   = 9
	ElemIPNextHopV4    = 10
	ElemIPNextHopV6    = 11
	ElemIPReceivedV4   = 12
	ElemIPReceivedV6   = 13
	ElemMPLSLabel      = 14
	ElemMACAddr        = 15
	ElemASAdjacent     = 16
	ElemLatency        = 17
	ElemSamplerInfo    = 18
	ElemNSELCommon     = 19
	ElemNSELXlateIPv4  = 20
	ElemNSELXlateIPv6  = 21
	ElemNSELXlatePort  = 22
	ElemNSELACL        = 23
	ElemNSELUser       = 24
	ElemNELCommon      = 25
	ElemNELXlatePort   = 26
	ElemNbarApp        = 27
	ElemLabel          = 28
	ElemInPayload      = 29
	ElemOutPayload     = 30
	ElemTunIPv4        = 31
	ElemTunIPv6        = 32
	ElemObservation    = 33
	ElemIfName         = 34
	ElemVrfName        = 35
	ElemVrf            = 36
	ElemPfInfo         = 37
	MaxElementID171    = 37 // highest id nfdump 1.7.1 knows
	MaxElements171     = 38 // most elements nfdump 1.7.1 accepts in one record
	ElementHeaderSize  = 4
	V3HeaderSize       = 12
	UserElementSize    = 72 // EXnselUser: header + 66-byte name + 2 fill bytes
	UserNameSize       = 66 // the name field, NUL-padded
	MaxUserNameLen     = 65 // longest name that leaves a terminating NUL
	maxRecordSize      = 65535
	elemGenericFlowLen = 52
)

// elementSizes holds the fixed element length (header included) of every
// element id of nfdump 1.7.1; 0 means variable. A fixed-size element that is
// shorter than this is corrupt; a longer one is tolerated (newer nfdump).
var elementSizes = [...]uint16{
	ElemGenericFlow:   52,
	ElemIPv4Flow:      12,
	ElemIPv6Flow:      36,
	ElemFlowMisc:      20,
	ElemCntFlow:       28,
	ElemVLAN:          12,
	ElemASRouting:     12,
	ElemBGPNextHopV4:  8,
	ElemBGPNextHopV6:  20,
	ElemIPNextHopV4:   8,
	ElemIPNextHopV6:   20,
	ElemIPReceivedV4:  8,
	ElemIPReceivedV6:  20,
	ElemMPLSLabel:     44,
	ElemMACAddr:       36,
	ElemASAdjacent:    12,
	ElemLatency:       28,
	ElemSamplerInfo:   16,
	ElemNSELCommon:    20,
	ElemNSELXlateIPv4: 12,
	ElemNSELXlateIPv6: 36,
	ElemNSELXlatePort: 8,
	ElemNSELACL:       28,
	ElemNSELUser:      UserElementSize,
	ElemNELCommon:     20,
	ElemNELXlatePort:  12,
	ElemNbarApp:       0,
	ElemLabel:         0,
	ElemInPayload:     0,
	ElemOutPayload:    0,
	ElemTunIPv4:       16,
	ElemTunIPv6:       44,
	ElemObservation:   20,
	ElemIfName:        8,
	ElemVrfName:       8,
	ElemVrf:           12,
	ElemPfInfo:        24,
}

// minElementSize returns the smallest valid length of element id, or 4 for
// unknown ids.
func minElementSize(id uint16) int {
	if int(id) < len(elementSizes) && elementSizes[id] != 0 {
		return int(elementSizes[id])
	}
	return ElementHeaderSize
}
