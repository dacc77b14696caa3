package flowfmt

import (
	"strconv"
	"time"

	"github.com/netdumper/netdumper/nfcap"
)

// NoMatchingFlows is the line nfdump prints (even with -q) when no record
// was printed.
const NoMatchingFlows = "No matching flows"

// Summary accumulates the figures nfdump prints after the records. Feed it
// every printed flow with AddFlow, every file's appendix with AddFile, and
// the reader counters directly.
type Summary struct {
	// Flows, Packets and Bytes add up the printed flows as nfdump does:
	// the EXcntFlow count (1 without it), in plus out counters.
	Flows, Packets, Bytes uint64
	// FirstSeen and LastSeen are the smallest first and the largest last
	// time (ms) of the printed flows; LastSeen is 0 before any flow.
	FirstSeen, LastSeen uint64
	// Processed counts the flow records read, Passed those printed.
	Processed, Passed uint64
	// BlocksSkipped counts data blocks that are not record blocks.
	BlocksSkipped uint64
	// BytesRead adds up the uncompressed payload sizes of the data blocks.
	BytesRead uint64

	// Time window of the files, in seconds, from their stat records.
	winFirst, winLast uint64
	files             int
}

// AddFlow counts one printed flow.
func (s *Summary) AddFlow(f *nfcap.Flow) {
	if s.Passed == 0 {
		s.FirstSeen = ^uint64(0) >> 1
	}
	s.Passed++
	s.Flows += aggrFlows(f)
	s.Packets += f.InPackets + f.OutPackets
	s.Bytes += f.InBytes + f.OutBytes
	if f.MsecFirst < s.FirstSeen {
		s.FirstSeen = f.MsecFirst
	}
	if f.MsecLast > s.LastSeen {
		s.LastSeen = f.MsecLast
	}
}

// AddFile widens the time window nfdump prints ("Time window: ...") with
// a file's stat record, which is all zero when the file has none.
func (s *Summary) AddFile(st *nfcap.Stat) {
	first, last := st.FirstSeen/1000, st.LastSeen/1000
	if s.files == 0 {
		s.winFirst, s.winLast = first, last
	} else {
		s.winFirst = min(s.winFirst, first)
		s.winLast = max(s.winLast, last)
	}
	s.files++
}

// rates returns nfdump's average bits/s, packets/s and bytes per packet.
func (s *Summary) rates() (bps, pps, bpp uint64) {
	var d float64
	if s.LastSeen != 0 {
		d = float64(s.LastSeen-s.FirstSeen) / 1000.0
	}
	if d > 0 {
		bps = cvtUint64(float64(s.Bytes<<3) / d)
		pps = cvtUint64(float64(s.Packets) / d)
		if s.Packets != 0 {
			bpp = s.Bytes / s.Packets
		}
	}
	return bps, pps, bpp
}

// AppendText appends nfdump's summary lines for text formats: "Summary:",
// "Time window:" and "Total flows processed:". nfdump's last line (the
// "Sys: ... Wall: ..." timing) is not reproduced, as it differs on every
// run. plain is nfdump -N.
func (s *Summary) AppendText(b []byte, plain bool, loc *time.Location) []byte {
	if loc == nil {
		loc = time.Local
	}
	bps, pps, bpp := s.rates()
	b = append(b, "Summary: total flows: "...)
	b = strconv.AppendUint(b, s.Flows, 10)
	b = append(b, ", total bytes: "...)
	b = appendNumber(b, s.Bytes, plain, false)
	b = append(b, ", total packets: "...)
	b = appendNumber(b, s.Packets, plain, false)
	b = append(b, ", avg bps: "...)
	b = appendNumber(b, bps, plain, false)
	b = append(b, ", avg pps: "...)
	b = appendNumber(b, pps, plain, false)
	b = append(b, ", avg bpp: "...)
	b = appendNumber(b, bpp, plain, false)
	b = append(b, "\nTime window: "...)
	switch {
	case s.winLast == 0:
		b = append(b, "<unknown>"...)
	case s.winFirst == 0:
		b = append(b, "Time Window unknown"...)
	default:
		var c timeCache
		b = c.appendDateTime(b, int64(s.winFirst), loc)
		b = append(b, " - "...)
		b = c.appendDateTime(b, int64(s.winLast), loc)
	}
	b = append(b, "\nTotal flows processed: "...)
	b = strconv.AppendUint(b, uint64(uint32(s.Processed)), 10)
	b = append(b, ", passed: "...)
	b = strconv.AppendUint(b, uint64(uint32(s.Passed)), 10)
	b = append(b, ", Blocks skipped: "...)
	b = strconv.AppendUint(b, uint64(uint32(s.BlocksSkipped)), 10)
	b = append(b, ", Bytes read: "...)
	b = strconv.AppendUint(b, s.BytesRead, 10)
	return append(b, '\n')
}

// AppendCSV appends the summary nfdump prints after CSV records.
func (s *Summary) AppendCSV(b []byte) []byte {
	bps, pps, bpp := s.rates()
	b = append(b, "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n"...)
	for i, v := range [...]uint64{s.Flows, s.Bytes, s.Packets, bps, pps, bpp} {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, v, 10)
	}
	return append(b, '\n')
}
