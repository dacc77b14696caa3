package nfcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Compression applied to every block, appendix included.
	Compression Compression
	// BlockSize is the largest plain payload per block; 0 means
	// WriteBlockSize (1 MiB, what nfdump 1.7.1 writes). At most MaxBlockSize.
	BlockSize int
	// Workers is how many goroutines compress blocks in parallel; 0 means
	// GOMAXPROCS, at most 4. Blocks are written in order whatever the count.
	Workers int
	// NfdVersion, Created and Creator go into the file header. Zero values
	// mean NfdVersion171, the current time and 0.
	NfdVersion uint32
	Created    int64
	Creator    uint32
	// Appendix holds the appendix records to write verbatim (ident, stat
	// and any other). When nil, the writer writes an ident record with
	// Ident and a stat record it computes from the flow records written.
	// A non-nil empty slice writes no appendix at all.
	Appendix [][]byte
	// Ident is the ident string used when Appendix is nil.
	Ident string
}

// writebackChunk is how much output collects before the Writer starts its
// writeback: per 1 MiB block the calls cost more kernel time than they
// save on fast output (uncompressed files).
const writebackChunk = 16 << 20

// Writer writes a layout-2 nfdump file. Records are packed into blocks of
// at most BlockSize plain bytes, compressed on parallel workers and written
// in order; the header is written last, by Close. Memory is bounded by a few
// blocks. When the destination is a file (it has an Fd method), each block
// is handed to the kernel's writeback as soon as it is written (Linux
// sync_file_range), so that a final fsync has little left to wait for. A
// Writer is not safe for concurrent use.
type Writer struct {
	w    io.WriterAt
	opts WriterOptions
	hdr  Header

	cur      *wblock // block being filled
	computed Stat    // when opts.Appendix is nil
	flowBuf  Flow

	// pipeline
	jobs    chan *wjob
	ordered chan *wjob
	free    chan *wblock
	wg      sync.WaitGroup
	werrMu  sync.Mutex
	werr    error
	failed  atomic.Bool
	closed  bool
	aborted bool

	// fd is set when w is a file: blocks are then handed to the kernel's
	// writeback as soon as they are written.
	fd interface{ Fd() uintptr }

	// written by the writer goroutine, read after wg.Wait
	synced    int64 // offset up to which writeback was started
	off       int64
	numBlocks uint32
}

// wblock is a block buffer travelling through the pipeline.
type wblock struct {
	typ     uint16
	records uint32
	plain   []byte
	stored  []byte
	err     error
}

type wjob struct {
	b    *wblock
	done chan struct{}
}

// NewWriter starts a file at offset 0 of w. Call Close to finish it; until
// then the file has no valid header.
func NewWriter(w io.WriterAt, opts WriterOptions) (*Writer, error) {
	if !opts.Compression.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedCompression, uint8(opts.Compression))
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = WriteBlockSize
	}
	if opts.BlockSize > MaxBlockSize {
		return nil, fmt.Errorf("block size %d is over the %d-byte limit", opts.BlockSize, MaxBlockSize)
	}
	if opts.NfdVersion == 0 {
		opts.NfdVersion = NfdVersion171
	}
	if opts.Created == 0 {
		opts.Created = time.Now().Unix()
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	wr := &Writer{
		w:    w,
		opts: opts,
		hdr: Header{
			Magic: Magic, Version: LayoutVersion, NfdVersion: opts.NfdVersion,
			Created: opts.Created, Compression: opts.Compression, Creator: opts.Creator,
		},
		off:     HeaderSize,
		synced:  0,
		jobs:    make(chan *wjob, workers),
		ordered: make(chan *wjob, workers+1),
		free:    make(chan *wblock, workers+2),
	}
	for i := 0; i < workers+2; i++ {
		wr.free <- &wblock{}
	}
	if fd, ok := w.(interface{ Fd() uintptr }); ok {
		wr.fd = fd
	}
	// Reserve the header now so a reader of a half-written file sees zeros,
	// not garbage; Close writes the real one.
	if _, err := w.WriteAt(make([]byte, HeaderSize), 0); err != nil {
		return nil, fmt.Errorf("writing header: %w", err)
	}
	wr.wg.Add(workers + 1)
	for i := 0; i < workers; i++ {
		go wr.compressLoop()
	}
	go wr.writeLoop()
	return wr, nil
}

func (wr *Writer) compressLoop() {
	defer wr.wg.Done()
	z, _ := newCompressor(wr.opts.Compression) // validated in NewWriter
	defer z.close()
	for j := range wr.jobs {
		b := j.b
		stored, err := z.compress(b.stored, b.plain)
		switch {
		case err != nil:
			b.err = err
		case len(stored) > MaxBlockSize:
			b.err = fmt.Errorf("compressed block of %d bytes is over the %d-byte limit", len(stored), MaxBlockSize)
		default:
			if wr.opts.Compression != CompressNone {
				b.stored = stored
			} else {
				b.stored = b.plain
			}
		}
		close(j.done)
	}
}

func (wr *Writer) writeLoop() {
	defer wr.wg.Done()
	var hb [BlockHeaderSize]byte
	for j := range wr.ordered {
		<-j.done
		b := j.b
		if wr.err() == nil {
			err := b.err
			if err == nil {
				bh := BlockHeader{NumRecords: b.records, Size: uint32(len(b.stored)), Type: b.typ}
				bh.appendBinary(hb[:0])
				if _, err = wr.w.WriteAt(hb[:], wr.off); err == nil {
					_, err = wr.w.WriteAt(b.stored, wr.off+BlockHeaderSize)
				}
			}
			if err != nil {
				wr.setErr(fmt.Errorf("writing block %d at offset %d: %w", wr.numBlocks, wr.off, err))
			} else {
				n := BlockHeaderSize + int64(len(b.stored))
				wr.off += n
				if wr.fd != nil && wr.off-wr.synced >= writebackChunk {
					startWriteback(wr.fd.Fd(), wr.synced, wr.off-wr.synced)
					wr.synced = wr.off
				}
				wr.numBlocks++
			}
		}
		if b.typ != BlockTypeData || wr.opts.Compression == CompressNone {
			b.stored = nil // aliases plain or a caller's buffer
		}
		b.plain = b.plain[:0]
		b.records = 0
		b.err = nil
		wr.free <- b
	}
}

func (wr *Writer) err() error {
	if !wr.failed.Load() {
		return nil
	}
	wr.werrMu.Lock()
	defer wr.werrMu.Unlock()
	return wr.werr
}

func (wr *Writer) setErr(err error) {
	wr.werrMu.Lock()
	defer wr.werrMu.Unlock()
	if wr.werr == nil {
		wr.werr = err
		wr.failed.Store(true)
	}
}

// submit hands a filled block to the pipeline, in order.
func (wr *Writer) submit(b *wblock) {
	j := &wjob{b: b, done: make(chan struct{})}
	wr.jobs <- j
	wr.ordered <- j
}

// block returns the block being filled, taking a fresh one if needed.
func (wr *Writer) block() *wblock {
	if wr.cur == nil {
		b := <-wr.free
		b.typ = BlockTypeData
		if cap(b.plain) < wr.opts.BlockSize {
			b.plain = make([]byte, 0, wr.opts.BlockSize)
		}
		wr.cur = b
	}
	return wr.cur
}

// flush submits the current block if it holds records.
func (wr *Writer) flush() {
	if wr.cur != nil && wr.cur.records > 0 {
		wr.submit(wr.cur)
		wr.cur = nil
	}
}

// Reserve returns n bytes at the end of the current block for the caller to
// fill with one record, starting a new block when the record would not fit.
// The slice is valid until the next call on the Writer. It fails when n is
// not a valid record size or the writer has failed.
func (wr *Writer) Reserve(n int) ([]byte, error) {
	if wr.closed {
		return nil, errors.New("nfcap: write to a closed writer")
	}
	if err := wr.err(); err != nil {
		return nil, err
	}
	if n < RecordHeaderSize || n > maxRecordSize {
		return nil, fmt.Errorf("record size %d outside 4..%d", n, maxRecordSize)
	}
	b := wr.block()
	if len(b.plain)+n > wr.opts.BlockSize && b.records > 0 {
		wr.flush()
		b = wr.block()
	}
	start := len(b.plain)
	b.plain = b.plain[:start+n]
	b.records++
	return b.plain[start : start+n : start+n], nil
}

// writeRecords appends n whole records, back to back in recs (checked by
// the caller), copying each run that fits the current block at once.
func (wr *Writer) writeRecords(recs []byte, n int) error {
	if wr.closed {
		return errors.New("nfcap: write to a closed writer")
	}
	for n > 0 {
		if err := wr.err(); err != nil {
			return err
		}
		b := wr.block()
		room := wr.opts.BlockSize - len(b.plain)
		end, k := 0, 0
		for k < n {
			size := int(binary.LittleEndian.Uint16(recs[end+2:]))
			if end+size > room && (k > 0 || b.records > 0) {
				break
			}
			end += size
			k++
		}
		if k == 0 {
			wr.flush()
			continue
		}
		b.plain = append(b.plain, recs[:end]...)
		b.records += uint32(k)
		recs, n = recs[end:], n-k
		if n > 0 {
			wr.flush()
		}
	}
	return nil
}

// WriteRecord appends a copy of rec (a whole record, header included) to
// the file. Its size field must match its length.
func (wr *Writer) WriteRecord(rec []byte) error {
	if len(rec) < RecordHeaderSize || int(binary.LittleEndian.Uint16(rec[2:])) != len(rec) {
		return fmt.Errorf("record of %d bytes has size field %d: %w", len(rec), recSizeField(rec), ErrCorrupt)
	}
	dst, err := wr.Reserve(len(rec))
	if err != nil {
		return err
	}
	copy(dst, rec)
	if wr.opts.Appendix == nil && binary.LittleEndian.Uint16(rec) == RecordTypeV3 {
		if err := DecodeFlow(dst, &wr.flowBuf); err == nil {
			wr.computed.Add(&wr.flowBuf)
		}
	}
	return nil
}

func recSizeField(rec []byte) int {
	if len(rec) < 4 {
		return -1
	}
	return int(binary.LittleEndian.Uint16(rec[2:]))
}

// WriteBlock writes a whole block of another type (for example an array
// block, type 4) as it is, re-compressed with the file's compression. The
// block being filled is written first, so file order is kept. data is
// copied.
func (wr *Writer) WriteBlock(typ uint16, numRecords uint32, data []byte) error {
	if wr.closed {
		return errors.New("nfcap: write to a closed writer")
	}
	if err := wr.err(); err != nil {
		return err
	}
	if numRecords == 0 || len(data) == 0 || len(data) > MaxBlockSize {
		return fmt.Errorf("block of type %d with %d records and %d bytes cannot be written", typ, numRecords, len(data))
	}
	wr.flush()
	b := <-wr.free
	b.typ = typ
	b.records = numRecords
	b.plain = append(b.plain[:0], data...)
	wr.submit(b)
	return nil
}

// Abort stops the writer without finishing the file; the output is left
// incomplete and should be removed. Close after Abort returns an error.
func (wr *Writer) Abort() {
	if wr.closed {
		return
	}
	wr.closed, wr.aborted = true, true
	wr.setErr(errors.New("nfcap: writer aborted"))
	close(wr.jobs)
	close(wr.ordered)
	wr.wg.Wait()
}

// Close writes the pending block, the appendix and the header. The file is
// complete only when Close returns nil.
func (wr *Writer) Close() error {
	if wr.closed {
		if wr.aborted {
			return wr.err()
		}
		return errors.New("nfcap: writer already closed")
	}
	wr.flush()
	wr.closed = true
	close(wr.jobs)
	close(wr.ordered)
	wr.wg.Wait()
	if err := wr.err(); err != nil {
		return err
	}
	hdr := wr.hdr
	hdr.NumBlocks = wr.numBlocks
	hdr.OffAppendix = wr.off
	app := wr.opts.Appendix
	if app == nil {
		st := wr.computed
		if st.NumFlows == 0 {
			st.FirstSeen = 0
		}
		app = [][]byte{IdentRecord(wr.opts.Ident), st.AppendRecord(nil)}
	}
	if len(app) > 0 {
		var plain []byte
		for _, rec := range app {
			plain = append(plain, rec...)
		}
		if len(plain) > MaxBlockSize {
			return fmt.Errorf("appendix of %d bytes is over the %d-byte limit", len(plain), MaxBlockSize)
		}
		z, _ := newCompressor(wr.opts.Compression)
		stored, err := z.compress(nil, plain)
		z.close()
		if err != nil {
			return fmt.Errorf("compressing appendix: %w", err)
		}
		var hb [BlockHeaderSize]byte
		BlockHeader{NumRecords: uint32(len(app)), Size: uint32(len(stored)), Type: BlockTypeData}.appendBinary(hb[:0])
		if _, err := wr.w.WriteAt(append(hb[:], stored...), wr.off); err != nil {
			return fmt.Errorf("writing appendix at offset %d: %w", wr.off, err)
		}
		hdr.AppendixBlocks = 1
	}
	hb, _ := hdr.AppendBinary(nil)
	if _, err := wr.w.WriteAt(hb, 0); err != nil {
		return fmt.Errorf("writing header: %w", err)
	}
	return nil
}
