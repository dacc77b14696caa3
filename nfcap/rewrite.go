package nfcap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unicode/utf8"
)

// LabelFunc returns the label for a flow and whether there is one; a label
// that is empty once cleaned (CleanLabel) counts as none. The Flow
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
	// NewLabel, when set, is called once per worker for a labelling
	// function of its own, and blocks are then relabelled in parallel;
	// Rewrite's label argument is not used. Each function is called from
	// one goroutine at a time.
	NewLabel func() LabelFunc
}

// RewriteStats counts what Rewrite did.
type RewriteStats struct {
	Blocks      int   // data blocks read
	Records     int64 // records read (all types)
	Flows       int64 // flow records
	Inserted    int64 // username element added
	Replaced    int64 // existing username overwritten (or empty one filled)
	Kept        int64 // existing non-empty username kept (or already the label)
	Placeholder int64 // placeholder written
	Unlabelled  int64 // no label, no placeholder: record unchanged
	TooLarge    int64 // element could not be added (record size or element limit)
	// Unchanged is set by RewriteFile when no record needed a change and
	// the original file was left as it was.
	Unchanged bool
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
// most 1 MiB). The work runs as a pipeline: one goroutine reads blocks,
// workers decompress and relabel them (in parallel when opts.NewLabel gives
// each its own labelling function; label alone is called from one
// goroutine, in file order), the caller's goroutine packs the records in
// order into new blocks, and the Writer compresses them in parallel. Memory
// stays bounded by a few blocks per worker.
//
// r must not have been read yet. Rewrite stops at the first read, label or
// write error, or when ctx is cancelled; the output is then incomplete and
// must be discarded (ReplaceFile does that).
func Rewrite(ctx context.Context, r *Reader, w interface {
	WriteAt(p []byte, off int64) (int, error)
}, label LabelFunc, opts RewriteOptions) (RewriteStats, error) {
	var st RewriteStats
	if r.started {
		return st, errors.New("nfcap: Rewrite needs a Reader that has not been read")
	}
	r.started = true
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
	workers := opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	workers = max(1, min(workers, int(hdr.NumBlocks)))
	if opts.NewLabel == nil {
		workers = 1
	}
	p := newRelabelPipeline(r, workers, &opts, label)
	defer p.stop()
	for {
		j, err := p.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			wr.Abort()
			return st, err
		}
		st.Blocks++
		st.add(&j.st)
		if j.buf.block.Header.Type != BlockTypeData {
			err = wr.WriteBlock(j.buf.block.Header.Type, j.buf.block.Header.NumRecords, j.buf.block.Data)
		} else {
			err = wr.writeRecords(j.out, j.nrec)
		}
		p.recycle(j)
		if err != nil {
			wr.Abort()
			return st, err
		}
		if opts.Progress != nil {
			opts.Progress(st.Blocks, int(hdr.NumBlocks))
		}
	}
	// Without an appendix nothing marks where the data ends: bytes after
	// the announced blocks are, most likely, blocks of a file nfcapd never
	// closed (it writes the real header last). nfdump does not read them,
	// but they are flows, and the output would lose them for good.
	// (The producer set pos before it handed over the last job.)
	if end := r.syncState.pos; hdr.AppendixBlocks == 0 && end < r.size {
		wr.Abort()
		return st, r.fmtErr(int(hdr.NumBlocks), end, errf(ErrCorrupt,
			"%d bytes follow the %d data blocks the header announces and there is no appendix (a file nfcapd did not finish?); a rewrite would drop them",
			r.size-end, hdr.NumBlocks))
	}
	if err := wr.Close(); err != nil {
		return st, err
	}
	return st, nil
}

// relabelJob is one block on its way through the relabel pipeline.
type relabelJob struct {
	buf  blockBuf
	out  []byte // relabelled records, back to back
	nrec int
	st   RewriteStats
	err  error
	done chan struct{}
}

// relabelPipeline reads raw blocks in file order on one goroutine and has
// workers decompress and relabel them; next hands them out in order.
type relabelPipeline struct {
	ordered chan *relabelJob
	free    chan *relabelJob
	quit    chan struct{}
	wg      sync.WaitGroup
	stopped bool
}

func newRelabelPipeline(r *Reader, workers int, opts *RewriteOptions, label LabelFunc) *relabelPipeline {
	depth := workers + 1
	p := &relabelPipeline{
		ordered: make(chan *relabelJob, depth),
		free:    make(chan *relabelJob, depth),
		quit:    make(chan struct{}),
	}
	for i := 0; i < depth; i++ {
		p.free <- &relabelJob{}
	}
	jobs := make(chan *relabelJob, workers)
	placeholder := CleanLabel(opts.Placeholder)
	p.wg.Add(workers + 1)
	for i := 0; i < workers; i++ {
		lf := label
		if opts.NewLabel != nil {
			lf = opts.NewLabel()
		}
		go func() {
			defer p.wg.Done()
			dec, _ := newDecompressor(r.hdr.Compression) // validated in NewReader
			defer dec.close()
			var f Flow
			for j := range jobs {
				j.err = relabelBlock(r, j, dec, &f, lf, opts, placeholder)
				close(j.done)
			}
		}()
	}
	go func() {
		defer p.wg.Done()
		defer close(p.ordered)
		defer close(jobs)
		st := &r.syncState
		for {
			var j *relabelJob
			select {
			case j = <-p.free:
			case <-p.quit:
				return
			}
			j.done = make(chan struct{})
			j.out, j.nrec, j.st, j.err = j.out[:0], 0, RewriteStats{}, nil
			if err := r.readNextRaw(st, &j.buf); err != nil {
				j.err = err
				close(j.done)
				select {
				case p.ordered <- j:
				case <-p.quit:
				}
				return
			}
			select {
			case jobs <- j:
			case <-p.quit:
				return
			}
			select {
			case p.ordered <- j:
			case <-p.quit:
				return
			}
		}
	}()
	return p
}

// next returns the next block, relabelled, in file order, or io.EOF.
func (p *relabelPipeline) next(ctx context.Context) (*relabelJob, error) {
	var j *relabelJob
	var ok bool
	select {
	case j, ok = <-p.ordered:
		if !ok {
			return nil, io.EOF
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if j.err != nil {
		return nil, j.err
	}
	return j, nil
}

func (p *relabelPipeline) recycle(j *relabelJob) { p.free <- j }

// stop ends the goroutines and waits for them.
func (p *relabelPipeline) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.quit)
	for j := range p.ordered {
		<-j.done
	}
	p.wg.Wait()
}

// relabelBlock decompresses the block in j and, for a record block,
// relabels its records into j.out.
func relabelBlock(r *Reader, j *relabelJob, dec *decompressor, f *Flow, label LabelFunc, opts *RewriteOptions, placeholder string) error {
	b := &j.buf.block
	if err := r.decodeBlock(&j.buf, dec); err != nil {
		return r.blockErr(b.Index, b.Offset, err)
	}
	if b.Header.Type != BlockTypeData {
		return nil
	}
	data := b.Data
	// Room for a username in every record, as far as records of at least
	// the element's size go (flow records are larger); a block of tiny
	// records grows j.out by append instead of reserving 72 bytes for each
	// of them, which for a 5 MiB block of 4-byte records was 99 MB.
	if need := len(data) + min(int(b.Header.NumRecords)*UserElementSize, len(data)); cap(j.out) < need {
		j.out = make([]byte, 0, need)
	}
	off := 0
	for i := uint32(0); i < b.Header.NumRecords; i++ {
		size := int(binary.LittleEndian.Uint16(data[off+2:]))
		rec := data[off : off+size]
		j.st.Records++
		if binary.LittleEndian.Uint16(rec) == RecordTypeV3 {
			var err error
			if j.out, err = relabel(j.out, rec, f, label, opts, placeholder, &j.st); err != nil {
				return &FormatError{File: r.Name(), Block: b.Index, Offset: b.Offset, RecordOffset: off, Err: err}
			}
		} else {
			j.out = append(j.out, rec...)
		}
		j.nrec++
		off += size
	}
	return nil
}

// add sums the counters of o into s (Blocks excepted).
func (s *RewriteStats) add(o *RewriteStats) {
	s.Records += o.Records
	s.Flows += o.Flows
	s.Inserted += o.Inserted
	s.Replaced += o.Replaced
	s.Kept += o.Kept
	s.Placeholder += o.Placeholder
	s.Unlabelled += o.Unlabelled
	s.TooLarge += o.TooLarge
}

// relabel appends one V3 record to out with its username set per policy.
func relabel(out, rec []byte, f *Flow, label LabelFunc, opts *RewriteOptions, placeholder string, st *RewriteStats) ([]byte, error) {
	if err := decodeFlowKey(rec, f); err != nil {
		return out, err
	}
	st.Flows++
	has := f.HasUsername()
	hasName := has && f.Username != ""
	name, ok := label(f)
	if ok {
		if name = CleanLabel(name); name == "" {
			ok = false // an empty username says nothing: write none
		}
	}
	usePlaceholder := false
	switch {
	case hasName && !opts.Overwrite:
		st.Kept++
		return append(out, rec...), nil
	case ok:
		if hasName && name == f.Username {
			st.Kept++ // already says so: the record stays byte for byte
			return append(out, rec...), nil
		}
	case hasName:
		st.Kept++ // no label for it: the username stays, overwrite or not
		return append(out, rec...), nil
	case placeholder != "":
		name, usePlaceholder = placeholder, true
	default:
		st.Unlabelled++
		return append(out, rec...), nil
	}
	le := binary.LittleEndian
	start := len(out)
	if has {
		out = append(out, rec...)
		setUserElements(out[start:], name)
	} else {
		n := int(le.Uint16(rec[4:]))
		if len(rec)+UserElementSize > maxRecordSize || n+1 > MaxElements171 {
			st.TooLarge++
			return append(out, rec...), nil
		}
		out = append(out, rec...)
		out = append(out, make([]byte, UserElementSize)...)
		dst := out[start:]
		le.PutUint16(dst[2:], uint16(len(dst)))
		le.PutUint16(dst[4:], uint16(n+1))
		e := dst[len(rec):]
		le.PutUint16(e[0:], ElemNSELUser)
		le.PutUint16(e[2:], UserElementSize)
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
	return out, nil
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
