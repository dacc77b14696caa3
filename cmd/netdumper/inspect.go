package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/netdumper/netdumper/nfcap"
)

func newInspectCmd(e env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [flags] FILE...",
		Short: "Describe nfdump files: layout, compression, blocks, records",
		Long: `inspect reads nfdump files (layout 2) and reports, for each file: the
layout and compression, the creation time, the ident, the number of blocks
(data and appendix), the number of records of each type, the first and last
seen times and the flow, packet and byte counters of the stat record (what
nfdump -v FILE and nfdump -I -r FILE print), and how many flow records carry
a username.

The counters are also recounted from the flow records; a stat record that
disagrees with them is pointed out.

With --json each file is one JSON object on its own line; a file that could
not be read completely has an "error" key (one that could not be opened at
all has only "file" and "error"). Exit status: 0 when every file was read
completely, 1 otherwise, 2 for a usage error.`,
		Args: needInputs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd.Context(), e, asJSON, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per file")
	return cmd
}

// counters are flow, packet and byte totals split by protocol, as in the
// stat record.
type counters struct {
	Flows        uint64 `json:"flows"`
	FlowsTCP     uint64 `json:"flows_tcp"`
	FlowsUDP     uint64 `json:"flows_udp"`
	FlowsICMP    uint64 `json:"flows_icmp"`
	FlowsOther   uint64 `json:"flows_other"`
	Packets      uint64 `json:"packets"`
	PacketsTCP   uint64 `json:"packets_tcp"`
	PacketsUDP   uint64 `json:"packets_udp"`
	PacketsICMP  uint64 `json:"packets_icmp"`
	PacketsOther uint64 `json:"packets_other"`
	Bytes        uint64 `json:"bytes"`
	BytesTCP     uint64 `json:"bytes_tcp"`
	BytesUDP     uint64 `json:"bytes_udp"`
	BytesICMP    uint64 `json:"bytes_icmp"`
	BytesOther   uint64 `json:"bytes_other"`
	// FirstSeenMs and LastSeenMs are milliseconds since the Unix epoch.
	FirstSeenMs uint64 `json:"first_seen_ms"`
	LastSeenMs  uint64 `json:"last_seen_ms"`
	FirstSeen   string `json:"first_seen"`
	LastSeen    string `json:"last_seen"`
}

func countersOf(s *nfcap.Stat, loc *time.Location) counters {
	return counters{
		Flows: s.NumFlows, FlowsTCP: s.NumFlowsTCP, FlowsUDP: s.NumFlowsUDP, FlowsICMP: s.NumFlowsICMP, FlowsOther: s.NumFlowsOther,
		Packets: s.NumPackets, PacketsTCP: s.NumPacketsTCP, PacketsUDP: s.NumPacketsUDP, PacketsICMP: s.NumPacketsICMP, PacketsOther: s.NumPacketsOther,
		Bytes: s.NumBytes, BytesTCP: s.NumBytesTCP, BytesUDP: s.NumBytesUDP, BytesICMP: s.NumBytesICMP, BytesOther: s.NumBytesOther,
		FirstSeenMs: s.FirstSeen, LastSeenMs: s.LastSeen,
		FirstSeen: msecTime(s.FirstSeen, loc), LastSeen: msecTime(s.LastSeen, loc),
	}
}

// msecTime renders a millisecond time as RFC 3339 in loc, or "" for 0 and
// for nfdump's "no flow" marker 0x7fffffffffffffff.
func msecTime(ms uint64, loc *time.Location) string {
	if ms == 0 || ms > 1<<62 {
		return ""
	}
	return time.UnixMilli(int64(ms)).In(loc).Format("2006-01-02T15:04:05.000Z07:00")
}

// fileReport is what inspect finds out about one file.
type fileReport struct {
	File           string `json:"file"`
	Size           int64  `json:"size"`
	Layout         uint16 `json:"layout"`
	NfdVersion     string `json:"nfdump_version"`
	Compression    string `json:"compression"`
	Encryption     uint8  `json:"encryption"`
	Created        string `json:"created"`
	CreatedUnix    int64  `json:"created_unix"`
	Ident          string `json:"ident"`
	HasIdent       bool   `json:"has_ident"`
	DataBlocks     uint32 `json:"data_blocks"`
	AppendixBlocks uint16 `json:"appendix_blocks"`
	// Blocks counts data and appendix blocks; BlockTypes counts them by
	// block type ("3" for record blocks, as nfdump -v's "Type 3 blocks").
	Blocks     int            `json:"blocks"`
	BlockTypes map[string]int `json:"block_types"`
	// Records counts the records of all record blocks, appendix included
	// (nfdump -v's "Records"); RecordTypes splits them by type.
	Records     int            `json:"records"`
	RecordTypes map[string]int `json:"record_types"`
	// Stat is the appendix stat record (nfdump -I); HasStat tells whether
	// the file has one.
	Stat             counters `json:"stat"`
	HasStat          bool     `json:"has_stat"`
	SequenceFailures uint64   `json:"sequence_failures"`
	// Recount is computed from the flow records themselves.
	Recount      counters `json:"recount"`
	StatMatches  bool     `json:"stat_matches_records"`
	FlowRecords  int      `json:"flow_records"`
	WithUsername int      `json:"flow_records_with_username"`
	NonEmptyUser int      `json:"flow_records_with_nonempty_username"`
	// TrailingBytes counts bytes after the appendix (nfdump -v: "Extra
	// data detected after regular blocks").
	TrailingBytes int64  `json:"trailing_bytes"`
	Error         string `json:"error,omitempty"`
}

// unreadableReport is inspect --json's object for a file it could not
// open or whose header it could not read.
type unreadableReport struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// recordTypeNames names the record types of nfdump 1.7.1 (src/lib/id.h).
var recordTypeNames = map[uint16]string{
	nfcap.RecordTypeCommonV0:     "common_v0",
	nfcap.RecordTypeExtensionMap: "extension_map",
	nfcap.RecordTypePortHisto:    "port_histogram",
	nfcap.RecordTypeBppHisto:     "bpp_histogram",
	nfcap.RecordTypeLegacy1:      "legacy1",
	nfcap.RecordTypeLegacy2:      "legacy2",
	nfcap.RecordTypeExporterInfo: "exporter_info",
	nfcap.RecordTypeExporterStat: "exporter_stat",
	nfcap.RecordTypeSamplerV0:    "sampler_legacy",
	nfcap.RecordTypeCommon:       "common_v2",
	nfcap.RecordTypeV3:           "flow",
	nfcap.RecordTypeNbar:         "nbar",
	nfcap.RecordTypeIfName:       "ifname",
	nfcap.RecordTypeVrfName:      "vrfname",
	nfcap.RecordTypeSampler:      "sampler",
	nfcap.RecordTypeIdent:        "ident",
	nfcap.RecordTypeStat:         "stat",
}

func recordTypeName(t uint16) string {
	if n, ok := recordTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown_%d", t)
}

// nfdVersionString renders the header's nfdversion word (0x01070100 is
// 1.7.1).
func nfdVersionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d (0x%08x)", v>>24, v>>16&0xff, v>>8&0xff, v)
}

func runInspect(ctx context.Context, e env, asJSON bool, args []string) error {
	loc := location(e)
	failed := 0
	for i, name := range args {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep, err := inspectFile(ctx, name, loc)
		var out any = rep
		if err != nil {
			failed++
			fmt.Fprintf(e.stderr, "netdumper: %v\n", err)
			if rep == nil {
				if !asJSON {
					continue
				}
				// A file that cannot be opened still gets its object,
				// as with enrich --json: the file and the error only.
				out = unreadableReport{File: name, Error: err.Error()}
			} else {
				rep.Error = err.Error()
			}
		}
		if asJSON {
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(e.stdout, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		if err := printReport(e.stdout, rep, loc); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("inspect: %s could not be read completely (see above)", count(failed, "file", "files"))
	}
	return nil
}

// inspectFile reads the whole file. It returns a partial report with the
// error when the file is damaged after its header.
func inspectFile(ctx context.Context, name string, loc *time.Location) (*fileReport, error) {
	r, err := nfcap.OpenFile(name, nfcap.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	h := r.Header()
	app := r.Appendix()
	rep := &fileReport{
		File:           name,
		Size:           r.Size(),
		Layout:         h.Version,
		NfdVersion:     nfdVersionString(h.NfdVersion),
		Compression:    h.Compression.String(),
		Encryption:     h.Encryption,
		Created:        h.CreatedTime().In(loc).Format(time.RFC3339),
		CreatedUnix:    h.Created,
		Ident:          app.Ident,
		HasIdent:       app.HasIdent,
		DataBlocks:     h.NumBlocks,
		AppendixBlocks: h.AppendixBlocks,
		BlockTypes:     map[string]int{},
		RecordTypes:    map[string]int{},
		HasStat:        app.HasStat,
		Stat:           countersOf(&app.Stat, loc),
	}
	if app.HasStat {
		rep.SequenceFailures = app.Stat.SequenceFailure
	}
	// The appendix block(s): type 3 blocks holding the ident and stat.
	if h.AppendixBlocks > 0 {
		rep.Blocks += int(h.AppendixBlocks)
		rep.BlockTypes["3"] += int(h.AppendixBlocks)
		for _, rec := range app.Records {
			rep.Records++
			rep.RecordTypes[recordTypeName(binary.LittleEndian.Uint16(rec))]++
		}
	}
	var recount nfcap.Stat
	var f nfcap.Flow
	end := int64(nfcap.HeaderSize)
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		b, err := r.NextBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			rep.finish(&recount, loc)
			return rep, err
		}
		end = b.Offset + nfcap.BlockHeaderSize + int64(b.Header.Size)
		rep.Blocks++
		rep.BlockTypes[fmt.Sprint(b.Header.Type)]++
		if b.Header.Type != nfcap.BlockTypeData {
			continue
		}
		data := b.Data
		off := 0
		for i := uint32(0); i < b.Header.NumRecords && len(data)-off >= nfcap.RecordHeaderSize; i++ {
			typ := binary.LittleEndian.Uint16(data[off:])
			size := int(binary.LittleEndian.Uint16(data[off+2:]))
			if size < nfcap.RecordHeaderSize || size > len(data)-off {
				break // the reader checked the framing; never reached
			}
			rep.Records++
			rep.RecordTypes[recordTypeName(typ)]++
			if typ == nfcap.RecordTypeV3 {
				if err := nfcap.DecodeFlow(data[off:off+size], &f); err != nil {
					rep.finish(&recount, loc)
					return rep, &nfcap.FormatError{File: name, Block: b.Index, Offset: b.Offset, RecordOffset: off, Err: err}
				}
				rep.FlowRecords++
				recount.Add(&f)
				if f.HasUsername() {
					rep.WithUsername++
					if f.Username != "" {
						rep.NonEmptyUser++
					}
				}
			}
			off += size
		}
	}
	if h.AppendixBlocks > 0 {
		end = appendixEnd(name, h)
	}
	if end > 0 && end <= rep.Size {
		rep.TrailingBytes = rep.Size - end
	}
	rep.finish(&recount, loc)
	return rep, nil
}

// finish stores the recount and compares it with the stat record.
func (rep *fileReport) finish(recount *nfcap.Stat, loc *time.Location) {
	rep.Recount = countersOf(recount, loc)
	st := rep.Stat
	rc := rep.Recount
	rep.StatMatches = rep.HasStat && st.Flows == rc.Flows && st.Packets == rc.Packets && st.Bytes == rc.Bytes &&
		st.FlowsTCP == rc.FlowsTCP && st.FlowsUDP == rc.FlowsUDP && st.FlowsICMP == rc.FlowsICMP && st.FlowsOther == rc.FlowsOther
}

// appendixEnd returns the file offset just past the appendix blocks, or -1
// when it cannot be read.
func appendixEnd(name string, h nfcap.Header) int64 {
	f, err := os.Open(name)
	if err != nil {
		return -1
	}
	defer f.Close()
	pos := h.OffAppendix
	for i := 0; i < int(h.AppendixBlocks); i++ {
		var bh [nfcap.BlockHeaderSize]byte
		if _, err := f.ReadAt(bh[:], pos); err != nil {
			return -1
		}
		pos += nfcap.BlockHeaderSize + int64(binary.LittleEndian.Uint32(bh[4:]))
	}
	return pos
}

func printReport(w io.Writer, rep *fileReport, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	p := func(k, format string, args ...any) { fmt.Fprintf(tw, k+":\t"+format+"\n", args...) }
	p("File", "%s (%d bytes)", rep.File, rep.Size)
	p("Layout", "%d, written by nfdump %s", rep.Layout, rep.NfdVersion)
	p("Compression", "%s", rep.Compression)
	p("Created", "%s", time.Unix(rep.CreatedUnix, 0).In(loc).Format(humanTime))
	if rep.HasIdent {
		p("Ident", "%s", rep.Ident)
	} else {
		p("Ident", "(none)")
	}
	switch {
	case rep.Blocks == int(rep.DataBlocks)+int(rep.AppendixBlocks):
		p("Blocks", "%d (%d data, %d appendix)", rep.Blocks, rep.DataBlocks, rep.AppendixBlocks)
	case rep.Error != "":
		// The read stopped early: what was read is not what the header
		// announces.
		p("Blocks", "%d read before the error (the header announces %d data, %d appendix)", rep.Blocks, rep.DataBlocks, rep.AppendixBlocks)
	default:
		p("Blocks", "%d (the header announces %d data, %d appendix)", rep.Blocks, rep.DataBlocks, rep.AppendixBlocks)
	}
	if len(rep.BlockTypes) > 1 || rep.BlockTypes["3"] != rep.Blocks {
		p("Block types", "%s", sortedCounts(rep.BlockTypes))
	}
	p("Records", "%d: %s", rep.Records, sortedCounts(rep.RecordTypes))
	st := rep.Stat
	if rep.HasStat {
		p("Flows", "%d (tcp %d, udp %d, icmp %d, other %d)", st.Flows, st.FlowsTCP, st.FlowsUDP, st.FlowsICMP, st.FlowsOther)
		p("Packets", "%d (tcp %d, udp %d, icmp %d, other %d)", st.Packets, st.PacketsTCP, st.PacketsUDP, st.PacketsICMP, st.PacketsOther)
		p("Bytes", "%d (tcp %d, udp %d, icmp %d, other %d)", st.Bytes, st.BytesTCP, st.BytesUDP, st.BytesICMP, st.BytesOther)
		p("First seen", "%s", humanMsec(st.FirstSeenMs, loc))
		p("Last seen", "%s", humanMsec(st.LastSeenMs, loc))
		p("Sequence failures", "%d", rep.SequenceFailures)
	} else {
		p("Stat record", "none")
	}
	rc := rep.Recount
	switch {
	case rep.StatMatches:
		p("Flow records", "%d, counters agree with the stat record", rep.FlowRecords)
	default:
		p("Flow records", "%d, recounted: %d flows, %d packets, %d bytes, first %s, last %s",
			rep.FlowRecords, rc.Flows, rc.Packets, rc.Bytes, humanMsec(rc.FirstSeenMs, loc), humanMsec(rc.LastSeenMs, loc))
	}
	p("Usernames", "%d of %d flow records carry a username (%d non-empty)", rep.WithUsername, rep.FlowRecords, rep.NonEmptyUser)
	if rep.TrailingBytes > 0 {
		p("Trailing bytes", "%d after the appendix", rep.TrailingBytes)
	}
	if rep.Error != "" {
		p("Error", "%s", rep.Error)
	}
	return tw.Flush()
}

// humanTime is how inspect prints times for people (local zone).
const humanTime = "2006-01-02 15:04:05 MST"

// humanMsec prints a millisecond time like nfdump does, in the local zone,
// or "-" for 0 and the "no flow" marker.
func humanMsec(ms uint64, loc *time.Location) string {
	if msecTime(ms, loc) == "" {
		return "-"
	}
	return time.UnixMilli(int64(ms)).In(loc).Format("2006-01-02 15:04:05.000 MST")
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
