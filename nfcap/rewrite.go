package nfcap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// LabelFunc returns the label for a flow and whether there is one. The Flow
// is valid only during the call. Rewrite decodes only what labelling
// needs: the record header, EXgenericFlow (times, ports, protocol,
// counters), the addresses and the username; Has reports every element.
type LabelFunc func(f *Flow) (label string, ok bool)

// RewriteOptions configure Rewrite.
type RewriteOptions struct {
	// Recompress selects Compression for the output; otherwise the input's
	// compression is kept.
	Recompress  bool
	Compression Compression
	// Overwrite replaces usernames a record already carries (for example
	// from a Cisco ASA). By default a non-empty username is kept. An empty
	// username element is always filled.
	Overwrite bool
	// Placeholder is written into records that have no username and no
	// label. Empty means such records stay without the element.
	Placeholder string
	// Workers for decompression and for compression; 0 means GOMAXPROCS
	// (at most 4) each.
	Workers int
	// Progress, when set, is called after each data block with the number
	// of blocks done and the file's total (the header's NumBlocks).
	Progress func(done, total int)
}

// RewriteStats counts what Rewrite did.
type RewriteStats struct {
	Blocks      int   // data blocks read
	Records     int64 // records read (all types)
	Flows       int64 // flow records
	Inserted    int64 // username element added
	Replaced    int64 // existing username overwritten (or empty one filled)
	Kept        int64 // existing non-empty username kept
	Placeholder int64 // placeholder written
	Unlabelled  int64 // no label, no placeholder: record unchanged
	TooLarge    int64 // element could not be added (record size or element limit)
}

// Labelled returns the number of flows that carry a label Rewrite wrote.
func (s *RewriteStats) Labelled() int64 { return s.Inserted + s.Replaced }

// CleanLabel makes s safe for the username element: control characters
// (0x00-0x1F, 0x7F) become '_', and the result is cut to MaxUserNameLen
// bytes on a UTF-8 boundary.
func CleanLabel(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		b := []byte(s)
		for i, c := range b {
			if c < 0x20 || c == 0x7f {
				b[i] = '_'
			}
		}
		s = string(b)
	}
	if len(s) <= MaxUserNameLen {
		return s
	}
	cut := MaxUserNameLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Rewrite copies every block of r to a new file written at offset 0 of w,
// setting the username element of each flow record from label:
//
//   - a record without the element gets one appended (size +72, one more
//     element) when label returns ok, or when a Placeholder is set;
//   - a record with a non-empty username keeps it unless Overwrite is set;
//   - everything else passes through byte for byte: other elements, other
//     record types (exporter, sampler, ...), other block types, and the
//     appendix (ident and stat records).
//
// Records keep their order; block boundaries may change (blocks hold at
// most 1 MiB). Memory stays bounded by a few blocks. Rewrite stops at the
// first read, label or write error, or when ctx is cancelled; the output is
// then incomplete and must be discarded (ReplaceFile does that).
func Rewrite(ctx context.Context, r *Reader, w interface {
	WriteAt(p []byte, off int64) (int, error)
}, label LabelFunc, opts RewriteOptions) (RewriteStats, error) {
	var st RewriteStats
	hdr := r.Header()
	comp := hdr.Compression
	if opts.Recompress {
		comp = opts.Compression
	}
	app := r.Appendix().Records
	if app == nil {
		app = [][]byte{}
	}
	wr, err := NewWriter(w, WriterOptions{
		Compression: comp, Workers: opts.Workers,
		NfdVersion: hdr.NfdVersion, Created: hdr.Created, Creator: hdr.Creator,
		Appendix: app,
	})
	if err != nil {
		return st, err
	}
	placeholder := CleanLabel(opts.Placeholder)
	var f Flow
	for {
		if err := ctx.Err(); err != nil {
			wr.Abort()
			return st, err
		}
		b, err := r.NextBlock()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			wr.Abort()
			return st, err
		}
		st.Blocks++
		if b.Header.Type != BlockTypeData {
			if err := wr.WriteBlock(b.Header.Type, b.Header.NumRecords, b.Data); err != nil {
				wr.Abort()
				return st, err
			}
			if opts.Progress != nil {
				opts.Progress(st.Blocks, int(hdr.NumBlocks))
			}
			continue
		}
		data := b.Data
		off := 0
		for i := uint32(0); i < b.Header.NumRecords; i++ {
			size := int(binary.LittleEndian.Uint16(data[off+2:]))
			rec := data[off : off+size]
			st.Records++
			if binary.LittleEndian.Uint16(rec) == RecordTypeV3 {
				err = relabel(wr, rec, &f, label, &opts, placeholder, &st)
				if err != nil {
					err = &FormatError{File: r.Name(), Block: b.Index, Offset: b.Offset, RecordOffset: off, Err: err}
				}
			} else {
				err = wr.WriteRecord(rec)
			}
			if err != nil {
				wr.Abort()
				return st, err
			}
			off += size
		}
		if opts.Progress != nil {
			opts.Progress(st.Blocks, int(hdr.NumBlocks))
		}
	}
	if err := wr.Close(); err != nil {
		return st, err
	}
	return st, nil
}

// relabel writes one V3 record to wr with its username set per policy.
func relabel(wr *Writer, rec []byte, f *Flow, label LabelFunc, opts *RewriteOptions, placeholder string, st *RewriteStats) error {
	if err := decodeFlowKey(rec, f); err != nil {
		return err
	}
	st.Flows++
	has := f.HasUsername()
	hasName := has && f.Username != ""
	name, ok := label(f)
	usePlaceholder := false
	switch {
	case hasName && !opts.Overwrite:
		st.Kept++
		return wr.WriteRecord(rec)
	case ok:
		name = CleanLabel(name)
	case placeholder != "" && !hasName:
		name, usePlaceholder = placeholder, true
	default:
		st.Unlabelled++
		return wr.WriteRecord(rec)
	}
	le := binary.LittleEndian
	if has {
		dst, err := wr.Reserve(len(rec))
		if err != nil {
			return err
		}
		copy(dst, rec)
		setUserElements(dst, name)
	} else {
		n := int(le.Uint16(rec[4:]))
		if len(rec)+UserElementSize > maxRecordSize || n+1 > MaxElements171 {
			st.TooLarge++
			return wr.WriteRecord(rec)
		}
		dst, err := wr.Reserve(len(rec) + UserElementSize)
		if err != nil {
			return err
		}
		copy(dst, rec)
		le.PutUint16(dst[2:], uint16(len(dst)))
		le.PutUint16(dst[4:], uint16(n+1))
		e := dst[len(rec):]
		le.PutUint16(e[0:], ElemNSELUser)
		le.PutUint16(e[2:], UserElementSize)
		clear(e[ElementHeaderSize:])
		copy(e[ElementHeaderSize:ElementHeaderSize+MaxUserNameLen], name)
	}
	switch {
	case usePlaceholder:
		st.Placeholder++
	case has:
		st.Replaced++
	default:
		st.Inserted++
	}
	return nil
}

// setUserElements overwrites the name of every username element of a
// (validated) V3 record.
func setUserElements(rec []byte, name string) {
	le := binary.LittleEndian
	n := int(le.Uint16(rec[4:]))
	p := V3HeaderSize
	for i := 0; i < n; i++ {
		id, l := le.Uint16(rec[p:]), int(le.Uint16(rec[p+2:]))
		if id == ElemNSELUser {
			d := rec[p+ElementHeaderSize : p+l]
			clear(d)
			copy(d[:MaxUserNameLen], name)
		}
		p += l
	}
}

// String summarises the counters.
func (s RewriteStats) String() string {
	return fmt.Sprintf("%d flows: %d inserted, %d replaced, %d kept, %d placeholder, %d unlabelled, %d too large",
		s.Flows, s.Inserted, s.Replaced, s.Kept, s.Placeholder, s.Unlabelled, s.TooLarge)
}
