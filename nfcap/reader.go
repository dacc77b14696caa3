package nfcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"runtime"
	"sync"
)

// ReaderOptions tune a Reader. The zero value is ready to use.
type ReaderOptions struct {
	// Name is the file name used in error messages. OpenFile sets it.
	Name string
	// ReadAhead is how many blocks are read and decompressed ahead of the
	// caller, on other goroutines. 0 means the default (Workers+1); a
	// negative value reads each block synchronously on the caller's
	// goroutine.
	ReadAhead int
	// Workers is how many goroutines decompress blocks in parallel when
	// reading ahead. 0 means GOMAXPROCS, at most 4. The goroutines start
	// with the first NextBlock or Next.
	Workers int
	// AppendixErrors lets a file whose appendix cannot be read open
	// anyway, without appendix (see Reader.AppendixError), as nfdump reads
	// its flows after saying so. A rewrite must not: it would lose the
	// appendix.
	AppendixErrors bool
}

// Block is one data block of a file, decompressed.
type Block struct {
	// Index is the 0-based data block number.
	Index int
	// Offset is the file offset of the block header.
	Offset int64
	// Header is the block header as stored.
	Header BlockHeader
	// Data is the plain (decompressed) payload. It is valid until the next
	// call to NextBlock or Next.
	Data []byte

	// valid is how many records are whole before a framing fault (the
	// block's error, which NextBlock returns instead of the block); Next
	// still hands them out, as nfdump prints them.
	valid uint32
}

// Reader reads a layout-2 nfdump file block by block or record by record.
// Its memory use is bounded by a few blocks, whatever the file size.
//
// A Reader is not safe for concurrent use. Use either NextBlock or
// Next/Record, not both on one Reader.
type Reader struct {
	ra       io.ReaderAt
	size     int64
	name     string
	closer   io.Closer
	hdr      Header
	appendix Appendix

	// block production
	next      func() (*Block, error) // returns the next block or io.EOF
	start     func()                 // starts the block pipeline on first use
	started   bool
	readAhead bool
	results   chan *job
	free      chan *blockBuf
	done      chan struct{}
	wg        sync.WaitGroup
	held      *blockBuf // buffer of the block the caller holds
	syncBuf   *blockBuf
	syncState producerState
	closeOnce sync.Once

	// record iteration
	cur      *Block
	recIdx   uint32
	recLimit uint32 // records of cur to hand out
	recOff   int
	rec      Record
	err      error
	fault    error // ends the iteration once cur's whole records are out

	appendixErr error // see AppendixError

	// BlocksSkipped counts blocks Next skipped because they are not type 3.
	blocksSkipped int
}

type blockBuf struct {
	stored []byte
	plain  []byte
	block  Block
}

type producerState struct {
	index int
	pos   int64
	dec   *decompressor
}

// OpenFile opens the named file for reading. Close the Reader to close the
// file.
func OpenFile(name string, opts ReaderOptions) (*Reader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	if opts.Name == "" {
		opts.Name = name
	}
	r, err := NewReader(f, fi.Size(), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads the header and the appendix of the size-byte file behind
// ra and returns a Reader positioned at the first data block.
func NewReader(ra io.ReaderAt, size int64, opts ReaderOptions) (*Reader, error) {
	r := &Reader{ra: ra, size: size, name: opts.Name}
	if err := r.readHeader(); err != nil {
		return nil, err
	}
	if err := r.readAppendix(); err != nil {
		if !opts.AppendixErrors {
			return nil, err
		}
		r.appendix, r.appendixErr = Appendix{}, err
	}
	dec, err := newDecompressor(r.hdr.Compression)
	if err != nil {
		return nil, r.fmtErr(BlockNone, 16, err)
	}
	r.syncState = producerState{pos: HeaderSize, dec: dec}
	if opts.ReadAhead < 0 || r.hdr.NumBlocks == 0 {
		r.next = r.nextSync
	} else {
		workers := opts.Workers
		if workers <= 0 {
			workers = min(runtime.GOMAXPROCS(0), 4)
		}
		workers = min(workers, int(r.hdr.NumBlocks))
		depth := opts.ReadAhead
		if depth == 0 {
			depth = workers + 1
		}
		r.start = func() { r.startReadAhead(max(depth, workers), workers) }
		r.next = r.nextAsync
	}
	return r, nil
}

// Header returns the file header.
func (r *Reader) Header() Header { return r.hdr }

// Appendix returns the appendix records (ident and stat).
func (r *Reader) Appendix() *Appendix { return &r.appendix }

// AppendixError is why the appendix could not be read, when the reader
// was opened with ReaderOptions.AppendixErrors (the Appendix is then
// empty); nil otherwise.
func (r *Reader) AppendixError() error { return r.appendixErr }

// Name returns the name used in error messages.
func (r *Reader) Name() string { return r.name }

// Size returns the file size in bytes.
func (r *Reader) Size() int64 { return r.size }

// BlocksSkipped returns how many blocks Next passed over because they are
// not ordinary record blocks (type 3).
func (r *Reader) BlocksSkipped() int { return r.blocksSkipped }

func (r *Reader) fmtErr(block int, off int64, err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	return &FormatError{File: r.name, Block: block, Offset: off, RecordOffset: -1, Err: err}
}

func (r *Reader) readHeader() error {
	var b [HeaderSize]byte
	n, err := r.ra.ReadAt(b[:], 0)
	if n < 4 {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		return r.fmtErr(BlockNone, 0, errf(ErrTruncated, "file of %d bytes is too short for an nfdump header", r.size))
	}
	magic := binary.LittleEndian.Uint16(b[:])
	version := binary.LittleEndian.Uint16(b[2:])
	switch {
	case magic == 0x0CA5:
		return r.fmtErr(BlockNone, 0, errf(ErrBadMagic, "magic 0x0ca5 (a file written on a big-endian host?)"))
	case magic != Magic:
		return r.fmtErr(BlockNone, 0, errf(ErrBadMagic, "magic 0x%04x, want 0x%04x", magic, Magic))
	case version == LegacyLayoutVersion:
		return r.fmtErr(BlockNone, 2, legacyLayoutError(r.name))
	case version != LayoutVersion:
		return r.fmtErr(BlockNone, 2, errf(ErrUnsupportedLayout, "layout version %d", version))
	}
	if n < HeaderSize {
		return r.fmtErr(BlockNone, 0, errf(ErrTruncated, "file of %d bytes is shorter than the %d-byte header", r.size, HeaderSize))
	}
	h := parseHeader(b[:])
	r.hdr = h
	switch {
	case h.Encryption != 0:
		return r.fmtErr(BlockNone, 17, errf(ErrEncrypted, "encryption byte %d", h.Encryption))
	case !h.Compression.Valid():
		return r.fmtErr(BlockNone, 16, errf(ErrUnsupportedCompression, "compression byte %d", uint8(h.Compression)))
	case int64(h.NumBlocks) > (r.size-HeaderSize)/(BlockHeaderSize+1):
		return r.fmtErr(BlockNone, 36, errf(ErrCorrupt, "header announces %d data blocks, more than a %d-byte file can hold", h.NumBlocks, r.size))
	case h.AppendixBlocks > 0 && (h.OffAppendix < HeaderSize || h.OffAppendix >= r.size):
		return r.fmtErr(BlockNone, 24, errf(ErrCorrupt, "appendix offset %d is outside the file (%d bytes)", h.OffAppendix, r.size))
	case int64(h.AppendixBlocks) > (r.size-HeaderSize)/(BlockHeaderSize+1):
		return r.fmtErr(BlockNone, 18, errf(ErrCorrupt, "header announces %d appendix blocks", h.AppendixBlocks))
	}
	return nil
}

func (r *Reader) readAppendix() error {
	if r.hdr.AppendixBlocks == 0 {
		return nil
	}
	dec, err := newDecompressor(r.hdr.Compression)
	if err != nil {
		return r.fmtErr(BlockNone, 16, err)
	}
	defer dec.close()
	pos := r.hdr.OffAppendix
	buf := &blockBuf{}
	for i := 0; i < int(r.hdr.AppendixBlocks); i++ {
		off := pos
		if err := r.readBlockAt(buf, dec, pos, -1); err != nil {
			return r.fmtErr(BlockAppendix, off, err)
		}
		b := &buf.block
		pos += BlockHeaderSize + int64(b.Header.Size)
		if b.Header.Type != BlockTypeData {
			return r.fmtErr(BlockAppendix, off, errf(ErrCorrupt, "appendix block has type %d, want 3", b.Header.Type))
		}
		if ro, err := parseAppendix(&r.appendix, b.Data, b.Header.NumRecords); err != nil {
			return &FormatError{File: r.name, Block: BlockAppendix, Offset: off, RecordOffset: ro, Err: err}
		}
	}
	return nil
}

// readRawAt reads the header and stored payload of the block at file offset
// pos into buf, checking the header. limit, when not negative, is the offset
// the block must not run past.
func (r *Reader) readRawAt(buf *blockBuf, pos, limit int64) error {
	var hb [BlockHeaderSize]byte
	if pos+BlockHeaderSize > r.size {
		return errf(ErrTruncated, "block header runs past the end of the file (%d bytes)", r.size)
	}
	if _, err := r.ra.ReadAt(hb[:], pos); err != nil {
		return fmt.Errorf("reading block header: %w", err)
	}
	bh := parseBlockHeader(hb[:])
	switch {
	case bh.Size == 0:
		return errf(ErrCorrupt, "block size is 0")
	case bh.NumRecords == 0:
		return errf(ErrCorrupt, "block holds 0 records")
	case bh.Size > MaxBlockSize:
		return errf(ErrTooLarge, "block size %d is over the %d-byte limit", bh.Size, MaxBlockSize)
	case pos+BlockHeaderSize+int64(bh.Size) > r.size:
		return errf(ErrTruncated, "block of %d bytes runs past the end of the file (%d bytes)", bh.Size, r.size)
	case limit >= 0 && pos+BlockHeaderSize+int64(bh.Size) > limit:
		return errf(ErrCorrupt, "block of %d bytes runs into the appendix at offset %d", bh.Size, limit)
	}
	if cap(buf.stored) < int(bh.Size) {
		buf.stored = make([]byte, bh.Size)
	}
	buf.stored = buf.stored[:bh.Size]
	if _, err := r.ra.ReadAt(buf.stored, pos+BlockHeaderSize); err != nil {
		return fmt.Errorf("reading block payload: %w", err)
	}
	buf.block.Offset = pos
	buf.block.Header = bh
	buf.block.Data = nil
	return nil
}

// readBlockData is decodeBlock for reading: bytes after a block's last
// record are ignored, as nfdump ignores them (a rewrite, which would drop
// them, refuses the block).
func (r *Reader) readBlockData(buf *blockBuf, dec *decompressor) error {
	err := r.decodeBlock(buf, dec)
	if _, ok := errors.AsType[*trailingError](err); ok {
		return nil
	}
	return err
}

// decodeBlock decompresses the stored payload in buf and, for type-3
// blocks, checks the record framing.
func (r *Reader) decodeBlock(buf *blockBuf, dec *decompressor) error {
	plain, err := dec.decompress(buf.plain, buf.stored)
	if err != nil {
		return err
	}
	if r.hdr.Compression != CompressNone {
		buf.plain = plain[:0]
	}
	buf.block.Data = plain
	bh := buf.block.Header
	buf.block.valid = bh.NumRecords
	if bh.Type == BlockTypeData {
		if ro, err := walkRecords(plain, bh.NumRecords, nil); err != nil {
			// Count the whole records before the fault (only then: this
			// is the path of every block).
			n := uint32(0)
			walkRecords(plain, bh.NumRecords, func(off int, _ []byte) error {
				if off >= ro {
					return errStop
				}
				n++
				return nil
			})
			buf.block.valid = n
			return &recordError{off: ro, err: err}
		}
	}
	return nil
}

// errStop ends a walk early.
var errStop = errors.New("stop")

// readBlockAt reads and decodes one block (used for the appendix).
func (r *Reader) readBlockAt(buf *blockBuf, dec *decompressor, pos, limit int64) error {
	if err := r.readRawAt(buf, pos, limit); err != nil {
		return err
	}
	return r.decodeBlock(buf, dec)
}

// recordError carries a payload offset out of decodeBlock.
type recordError struct {
	off int
	err error
}

func (e *recordError) Error() string { return e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// blockErr turns an error about the block at index/pos into a FormatError.
func (r *Reader) blockErr(index int, pos int64, err error) error {
	var re *recordError
	if errors.As(err, &re) {
		return &FormatError{File: r.name, Block: index, Offset: pos, RecordOffset: re.off, Err: re.err}
	}
	return r.fmtErr(index, pos, err)
}

// readNextRaw reads the raw next data block into buf, or returns io.EOF
// after the last one (checking that the data blocks end at the appendix).
func (r *Reader) readNextRaw(st *producerState, buf *blockBuf) error {
	if st.index >= int(r.hdr.NumBlocks) {
		if r.hdr.AppendixBlocks > 0 && st.pos != r.hdr.OffAppendix {
			return r.fmtErr(st.index, st.pos, errf(ErrCorrupt, "the %d data blocks end at offset %d, but the appendix starts at %d", r.hdr.NumBlocks, st.pos, r.hdr.OffAppendix))
		}
		return io.EOF
	}
	limit := int64(-1)
	if r.hdr.AppendixBlocks > 0 {
		limit = r.hdr.OffAppendix
	}
	if err := r.readRawAt(buf, st.pos, limit); err != nil {
		return r.blockErr(st.index, st.pos, err)
	}
	buf.block.Index = st.index
	st.index++
	st.pos += BlockHeaderSize + int64(buf.block.Header.Size)
	return nil
}

func (r *Reader) nextSync() (*Block, error) {
	if r.syncBuf == nil {
		r.syncBuf = &blockBuf{}
	}
	buf := r.syncBuf
	if err := r.readNextRaw(&r.syncState, buf); err != nil {
		return nil, err
	}
	if err := r.readBlockData(buf, r.syncState.dec); err != nil {
		return faultyBlock(&buf.block, err), r.blockErr(buf.block.Index, buf.block.Offset, err)
	}
	return &buf.block, nil
}

// faultyBlock returns b when err is a record framing fault in it (its
// whole records can still be read), else nil.
func faultyBlock(b *Block, err error) *Block {
	var re *recordError
	if errors.As(err, &re) {
		return b
	}
	return nil
}

// job is one block on its way through the read-ahead pipeline.
type job struct {
	buf   *blockBuf
	err   error
	fault bool          // err is a record framing fault: buf's whole records are good
	done  chan struct{} // closed when a worker has decoded buf (or err is set)
}

// startReadAhead starts one goroutine reading raw blocks in file order and
// workers decompressing them in parallel. Jobs are queued in order, so the
// caller gets blocks in file order; at most depth blocks are in flight.
func (r *Reader) startReadAhead(depth, workers int) {
	r.readAhead = true
	r.results = make(chan *job, depth)
	jobs := make(chan *job, depth)
	r.free = make(chan *blockBuf, depth+1)
	r.done = make(chan struct{})
	for i := 0; i < depth+1; i++ {
		r.free <- &blockBuf{}
	}
	r.wg.Add(1 + workers)
	for w := 0; w < workers; w++ {
		dec := r.syncState.dec
		if w > 0 {
			dec, _ = newDecompressor(r.hdr.Compression) // validated in NewReader
		}
		go func() {
			defer r.wg.Done()
			if w > 0 {
				defer dec.close()
			}
			for j := range jobs {
				if err := r.readBlockData(j.buf, dec); err != nil {
					j.err = r.blockErr(j.buf.block.Index, j.buf.block.Offset, err)
					j.fault = faultyBlock(&j.buf.block, err) != nil
				}
				close(j.done)
			}
		}()
	}
	go func() {
		defer r.wg.Done()
		defer close(r.results)
		defer close(jobs)
		st := &r.syncState
		for {
			var buf *blockBuf
			select {
			case buf = <-r.free:
			case <-r.done:
				return
			}
			j := &job{buf: buf, done: make(chan struct{})}
			readErr := r.readNextRaw(st, buf)
			if readErr != nil {
				j.err = readErr
				close(j.done)
			} else {
				select {
				case jobs <- j:
				case <-r.done:
					return
				}
			}
			select {
			case r.results <- j:
			case <-r.done:
				return
			}
			if readErr != nil {
				return
			}
		}
	}()
}

func (r *Reader) nextAsync() (*Block, error) {
	if r.held != nil {
		r.free <- r.held
		r.held = nil
	}
	j, ok := <-r.results
	if !ok {
		return nil, io.EOF
	}
	<-j.done
	if j.err != nil && !j.fault {
		return nil, j.err
	}
	r.held = j.buf
	return &j.buf.block, j.err
}

// NextBlock returns the next data block, of any type, or io.EOF after the
// last one. The block is valid until the next call.
func (r *Reader) NextBlock() (*Block, error) {
	b, err := r.NextBlockPartial()
	if err != nil {
		r.err = err
		return nil, err
	}
	return b, nil
}

// NextBlockPartial is NextBlock, except that a data block whose record
// framing is damaged comes back too, with its error: the records before
// the damaged one are whole and can be read, as nfdump prints them. After
// such a block the reader is done (the error stays).
func (r *Reader) NextBlockPartial() (*Block, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.started {
		r.started = true
		if r.start != nil {
			r.start()
		}
	}
	b, err := r.next()
	if err != nil {
		r.err = err
	}
	return b, err
}

// Next advances to the next record of the ordinary (type 3) blocks and
// reports whether there is one. Blocks of other types are skipped. After
// Next returns false, Err tells whether the file ended cleanly.
func (r *Reader) Next() bool {
	for {
		if b := r.cur; b != nil && r.recIdx < r.recLimit {
			d := b.Data[r.recOff:]
			size := int(binary.LittleEndian.Uint16(d[2:]))
			r.rec = Record{
				Type:        binary.LittleEndian.Uint16(d),
				Data:        d[:size:size],
				Block:       b.Index,
				BlockOffset: b.Offset,
				Offset:      r.recOff,
			}
			r.recIdx++
			r.recOff += size
			return true
		}
		r.cur = nil
		if r.fault != nil {
			// The records before a block's fault are out; now its error.
			r.err, r.fault = r.fault, nil
			return false
		}
		b, err := r.NextBlockPartial()
		if b == nil {
			return false
		}
		if b.Header.Type != BlockTypeData {
			if err != nil {
				r.err = err
				return false
			}
			r.blocksSkipped++
			continue
		}
		r.cur, r.recIdx, r.recLimit, r.recOff, r.fault = b, 0, b.valid, 0, err
	}
}

// Record returns the current record. Its Data is valid until the reader
// moves to the next block.
func (r *Reader) Record() Record { return r.rec }

// Flow decodes the current record into f. It fails if the record is not a
// flow record or is malformed; the error names the file, block and offset.
func (r *Reader) Flow(f *Flow) error {
	if err := DecodeFlow(r.rec.Data, f); err != nil {
		return r.RecordError(err)
	}
	return nil
}

// RecordError wraps err with the position of the current record.
func (r *Reader) RecordError(err error) error {
	return &FormatError{File: r.name, Block: r.rec.Block, Offset: r.rec.BlockOffset, RecordOffset: r.rec.Offset, Err: err}
}

// Err returns the error that stopped Next or NextBlock, or nil at a clean
// end of file.
func (r *Reader) Err() error {
	if errors.Is(r.err, io.EOF) {
		return nil
	}
	return r.err
}

// Flows iterates over the flow records, skipping other record types. The
// *Flow is reused between iterations. Iteration stops at the first error,
// which is yielded with a nil flow.
func (r *Reader) Flows() iter.Seq2[*Flow, error] {
	return func(yield func(*Flow, error) bool) {
		var f Flow
		for r.Next() {
			if r.rec.Type != RecordTypeV3 {
				continue
			}
			if err := r.Flow(&f); err != nil {
				yield(nil, err)
				return
			}
			if !yield(&f, nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(nil, err)
		}
	}
}

// Close stops the read-ahead goroutine and closes the file if the Reader
// opened it.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		if r.readAhead {
			close(r.done)
			r.wg.Wait()
		}
		r.cur = nil
		r.syncState.dec.close()
		if r.closer != nil {
			err = r.closer.Close()
		}
		if r.err == nil {
			r.err = errors.New("nfcap: reader closed")
		}
	})
	return err
}
