package nfcap

import (
	"bytes"
	"encoding/binary"
	"time"
)

// StatRecordSize is the size of the appendix stat record (header included).
const StatRecordSize = 4 + 144

// maxIdentRecord is the largest ident record nfdump 1.7.1 accepts (size < 128).
const maxIdentRecord = 127

// Stat holds the counters of the appendix stat record, as `nfdump -I` prints
// them. FirstSeen and LastSeen are milliseconds since the Unix epoch.
type Stat struct {
	NumFlows        uint64
	NumBytes        uint64
	NumPackets      uint64
	NumFlowsTCP     uint64
	NumFlowsUDP     uint64
	NumFlowsICMP    uint64
	NumFlowsOther   uint64
	NumBytesTCP     uint64
	NumBytesUDP     uint64
	NumBytesICMP    uint64
	NumBytesOther   uint64
	NumPacketsTCP   uint64
	NumPacketsUDP   uint64
	NumPacketsICMP  uint64
	NumPacketsOther uint64
	FirstSeen       uint64
	LastSeen        uint64
	SequenceFailure uint64
}

// First returns FirstSeen as a time.
func (s *Stat) First() time.Time { return time.UnixMilli(int64(s.FirstSeen)) }

// Last returns LastSeen as a time.
func (s *Stat) Last() time.Time { return time.UnixMilli(int64(s.LastSeen)) }

func (s *Stat) fields() []*uint64 {
	return []*uint64{
		&s.NumFlows, &s.NumBytes, &s.NumPackets,
		&s.NumFlowsTCP, &s.NumFlowsUDP, &s.NumFlowsICMP, &s.NumFlowsOther,
		&s.NumBytesTCP, &s.NumBytesUDP, &s.NumBytesICMP, &s.NumBytesOther,
		&s.NumPacketsTCP, &s.NumPacketsUDP, &s.NumPacketsICMP, &s.NumPacketsOther,
		&s.FirstSeen, &s.LastSeen, &s.SequenceFailure,
	}
}

func parseStat(payload []byte) Stat {
	var s Stat
	for i, p := range s.fields() {
		*p = binary.LittleEndian.Uint64(payload[8*i:])
	}
	return s
}

// AppendRecord appends the 148-byte stat record (type 0x8002) for s to b.
func (s *Stat) AppendRecord(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, RecordTypeStat)
	b = binary.LittleEndian.AppendUint16(b, StatRecordSize)
	for _, p := range s.fields() {
		b = binary.LittleEndian.AppendUint64(b, *p)
	}
	return b
}

// Add counts one flow into s the way nfdump 1.7.1 does: ICMP includes
// ICMPv6, and each flow counts its aggregated flow count.
func (s *Stat) Add(f *Flow) {
	flows := f.AggrFlows()
	pkts := f.InPackets + f.OutPackets
	byts := f.InBytes + f.OutBytes
	s.NumFlows += flows
	s.NumPackets += pkts
	s.NumBytes += byts
	switch f.Proto {
	case ProtoTCP:
		s.NumFlowsTCP += flows
		s.NumPacketsTCP += pkts
		s.NumBytesTCP += byts
	case ProtoUDP:
		s.NumFlowsUDP += flows
		s.NumPacketsUDP += pkts
		s.NumBytesUDP += byts
	case ProtoICMP, ProtoICMPv6:
		s.NumFlowsICMP += flows
		s.NumPacketsICMP += pkts
		s.NumBytesICMP += byts
	default:
		s.NumFlowsOther += flows
		s.NumPacketsOther += pkts
		s.NumBytesOther += byts
	}
	if f.MsecFirst < s.FirstSeen || s.FirstSeen == 0 {
		s.FirstSeen = f.MsecFirst
	}
	if f.MsecLast > s.LastSeen {
		s.LastSeen = f.MsecLast
	}
}

// Appendix holds the records of a file's appendix block.
type Appendix struct {
	// Ident is the ident string (nfcapd -I), valid when HasIdent.
	Ident    string
	HasIdent bool
	// Stat is the stat record, valid when HasStat.
	Stat    Stat
	HasStat bool
	// Records holds every appendix record as stored, in file order, so a
	// writer can copy them through unchanged.
	Records [][]byte

	size int // bytes of Records, checked against maxAppendixBytes
}

// maxAppendixBytes bounds the records of one file's appendix.
const maxAppendixBytes = 64 << 10

// parseAppendix decodes the records of one appendix block payload. Records
// of unknown type, and ident or stat records of the wrong size, are kept in
// Records but otherwise ignored, as nfdump 1.7.1 does.
// A file's appendix may hold at most maxAppendixBytes of records in all,
// however many blocks it spans: nfdump 1.7.1 writes an ident and a stat
// record (under 300 bytes), and without a limit a tiny compressed file
// could make every reader keep gigabytes of them.
func parseAppendix(a *Appendix, payload []byte, n uint32) (int, error) {
	return walkRecords(payload, n, func(_ int, rec []byte) error {
		if a.size += len(rec); a.size > maxAppendixBytes {
			return errf(ErrTooLarge, "appendix records exceed %d bytes in all (nfdump writes an ident and a stat record)", maxAppendixBytes)
		}
		a.Records = append(a.Records, bytes.Clone(rec))
		typ := binary.LittleEndian.Uint16(rec)
		switch {
		case typ == RecordTypeIdent && len(rec) <= maxIdentRecord:
			s := rec[RecordHeaderSize:]
			if i := bytes.IndexByte(s, 0); i >= 0 {
				s = s[:i]
			}
			a.Ident, a.HasIdent = string(s), true
		case typ == RecordTypeStat && len(rec) == StatRecordSize:
			a.Stat, a.HasStat = parseStat(rec[RecordHeaderSize:]), true
		}
		return nil
	})
}

// IdentRecord returns an ident record (type 0x8001) for ident, in the form
// nfdump 1.7.1 writes: header, the string, one NUL. Idents that nfdump
// would refuse (127 bytes or more in all) are cut.
func IdentRecord(ident string) []byte {
	if len(ident) > maxIdentRecord-RecordHeaderSize-1 {
		ident = ident[:maxIdentRecord-RecordHeaderSize-1]
	}
	size := RecordHeaderSize + len(ident) + 1
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint16(b, RecordTypeIdent)
	b = binary.LittleEndian.AppendUint16(b, uint16(size))
	b = append(b, ident...)
	return append(b, 0)
}
