package tui

// flowFile pages through an nfdump file of any size without loading it:
// a background pass reads the file once, recording for each data block
// its file offset and the number of its first flow record (and counting
// matches and usernames on the way), and a page is then shown by decoding
// only the blocks that hold its records. A few decoded blocks are cached.
//
// nfcap's Reader reads a file from its first block on; to start at block
// k, flowFile hands it a view of the file that is the original header
// (announcing one block and no appendix) followed by the bytes from block
// k's offset on.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/nfcap"
)

// blockInfo locates one data block that holds flow records.
type blockInfo struct {
	index  int   // data block number
	offset int64 // file offset of the block header
	first  int   // number of its first flow record (0-based, file order)
	flows  int   // flow records in it
}

// decodedBlock is the flow records of one block, copied out of the
// reader's buffer.
type decodedBlock struct {
	index int
	data  []byte
	offs  []uint32 // start of each flow record in data
}

func (d *decodedBlock) record(i int) []byte {
	end := len(d.data)
	if i+1 < len(d.offs) {
		end = int(d.offs[i+1])
	}
	return d.data[d.offs[i]:end]
}

// maxCachedBlocks bounds the decoded blocks kept (each at most 5 MiB).
const maxCachedBlocks = 6

// indexProgress is a snapshot of the background pass.
type indexProgress struct {
	blocksDone  int
	blocksTotal int
	flows       int // flow records indexed so far
	done        bool
	err         error
	users       int64           // records carrying a username
	summary     *enrich.Summary // when done
}

type flowFile struct {
	path  string
	f     *os.File
	size  int64
	mtime time.Time
	hdr   nfcap.Header
	stat  nfcap.Stat
	hasSt bool
	end   int64 // where the data blocks end

	mu     sync.Mutex // guards blocks and prog
	blocks []blockInfo
	prog   indexProgress

	cacheMu sync.Mutex
	cache   []*decodedBlock // most recently used last
}

// openFlowFile opens path and reads its header and appendix. Everything
// later (the index pass, the pages) reads this open file, so that a file
// replaced meanwhile (renamed over by a commit) is not mixed with it.
func openFlowFile(path string) (*flowFile, error) {
	f, err := os.Open(path)
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
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	r, err := nfcap.NewReader(f, fi.Size(), nfcap.ReaderOptions{Name: path, ReadAhead: -1})
	if err != nil {
		f.Close()
		return nil, err
	}
	hdr, a := r.Header(), r.Appendix()
	r.Close()
	ff := &flowFile{path: path, f: f, size: fi.Size(), mtime: fi.ModTime(), hdr: hdr, stat: a.Stat, hasSt: a.HasStat}
	ff.end = ff.size
	if hdr.AppendixBlocks > 0 {
		ff.end = hdr.OffAppendix
	}
	ff.prog.blocksTotal = int(hdr.NumBlocks)
	return ff, nil
}

func (ff *flowFile) close() {
	if ff.f != nil {
		ff.f.Close()
	}
}

func (ff *flowFile) progress() indexProgress {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.prog
}

// blockOf returns the block holding flow record n.
func (ff *flowFile) blockOf(n int) (blockInfo, bool) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	i := sort.Search(len(ff.blocks), func(i int) bool { return ff.blocks[i].first+ff.blocks[i].flows > n })
	if i == len(ff.blocks) || n < ff.blocks[i].first {
		return blockInfo{}, false
	}
	return ff.blocks[i], true
}

// runIndex reads the whole file once: it records where each block is,
// labels every flow with plan (for the match statistics) and counts the
// usernames. notify is called after the first block and then at most
// every 100 ms, and once at the end.
func (ff *flowFile) runIndex(ctx context.Context, plan *enrich.Plan, notify func()) {
	finish := func(err error) {
		ff.mu.Lock()
		ff.prog.done, ff.prog.err = true, err
		if plan != nil && err == nil {
			s := plan.Summary()
			ff.prog.summary = &s
		}
		ff.mu.Unlock()
		notify()
	}
	r, err := nfcap.NewReader(ff.f, ff.size, nfcap.ReaderOptions{Name: ff.path, Workers: 1})
	if err != nil {
		finish(err)
		return
	}
	defer r.Close()
	var (
		f         nfcap.Flow
		cur       = blockInfo{index: -1}
		flows     int
		users     int64
		lastTell  time.Time
		blockDone int
	)
	flush := func() {
		blockDone++
		ff.mu.Lock()
		if cur.flows > 0 {
			ff.blocks = append(ff.blocks, cur)
		}
		ff.prog.blocksDone, ff.prog.flows, ff.prog.users = blockDone, flows, users
		ff.mu.Unlock()
		if blockDone == 1 || time.Since(lastTell) > 100*time.Millisecond {
			lastTell = time.Now()
			notify()
		}
	}
	for r.Next() {
		rec := r.Record()
		if rec.Block != cur.index {
			if cur.index >= 0 {
				flush()
				if ctx.Err() != nil {
					finish(ctx.Err())
					return
				}
			}
			cur = blockInfo{index: rec.Block, offset: rec.BlockOffset, first: flows}
		}
		if rec.Type != nfcap.RecordTypeV3 {
			continue
		}
		cur.flows++
		flows++
		if err := nfcap.DecodeFlow(rec.Data, &f); err != nil {
			continue // shown as an undecodable row in the preview
		}
		if f.Username != "" {
			users++
		}
		if plan != nil {
			plan.Label(&f)
		}
	}
	if cur.index >= 0 {
		flush()
	}
	finish(r.Err())
}

// block returns the decoded block bi, from the cache or the file.
func (ff *flowFile) block(bi blockInfo) (*decodedBlock, error) {
	ff.cacheMu.Lock()
	defer ff.cacheMu.Unlock()
	for i, d := range ff.cache {
		if d.index == bi.index {
			copy(ff.cache[i:], ff.cache[i+1:])
			ff.cache[len(ff.cache)-1] = d
			return d, nil
		}
	}
	d, err := ff.readBlock(bi)
	if err != nil {
		return nil, err
	}
	if len(ff.cache) >= maxCachedBlocks {
		copy(ff.cache, ff.cache[1:])
		ff.cache = ff.cache[:len(ff.cache)-1]
	}
	ff.cache = append(ff.cache, d)
	return d, nil
}

// blockErr places an error of the one-block reader of readBlock (whose
// block is its block 0 at offset 40) at bi in the file.
func (ff *flowFile) blockErr(bi blockInfo, err error) error {
	if fe, ok := errors.AsType[*nfcap.FormatError](err); ok && fe.Block >= 0 {
		return &nfcap.FormatError{File: ff.path, Block: bi.index, Offset: bi.offset, RecordOffset: fe.RecordOffset, Err: fe.Err}
	}
	return fmt.Errorf("%s: block %d at offset %d: %w", ff.path, bi.index, bi.offset, err)
}

// readBlock decodes the single block bi.
func (ff *flowFile) readBlock(bi blockInfo) (*decodedBlock, error) {
	h := ff.hdr
	h.NumBlocks, h.AppendixBlocks, h.OffAppendix = 1, 0, 0
	hb, _ := h.AppendBinary(make([]byte, 0, nfcap.HeaderSize))
	v := &blockView{f: ff.f, hdr: hb, off: bi.offset}
	size := int64(nfcap.HeaderSize) + ff.end - bi.offset
	r, err := nfcap.NewReader(v, size, nfcap.ReaderOptions{Name: ff.path, ReadAhead: -1})
	if err != nil {
		return nil, ff.blockErr(bi, err)
	}
	defer r.Close()
	d := &decodedBlock{index: bi.index, offs: make([]uint32, 0, bi.flows)}
	for r.Next() {
		rec := r.Record()
		if rec.Type != nfcap.RecordTypeV3 {
			continue
		}
		d.offs = append(d.offs, uint32(len(d.data)))
		d.data = append(d.data, rec.Data...)
	}
	// A block damaged after some whole records (reported by the index
	// pass, which counted those records) shows them.
	if err := r.Err(); err != nil && len(d.offs) != bi.flows {
		return nil, ff.blockErr(bi, err)
	}
	if len(d.offs) != bi.flows {
		return nil, fmt.Errorf("%s: block %d at offset %d holds %d flow records, the index says %d (file changed?)",
			ff.path, bi.index, bi.offset, len(d.offs), bi.flows)
	}
	return d, nil
}

// blockView is an io.ReaderAt over a file seen as hdr followed by the
// file's bytes from off on.
type blockView struct {
	f   io.ReaderAt
	hdr []byte
	off int64
}

func (v *blockView) ReadAt(p []byte, at int64) (int, error) {
	n := 0
	if at < int64(len(v.hdr)) {
		n = copy(p, v.hdr[at:])
		if n == len(p) {
			return n, nil
		}
		at = int64(len(v.hdr))
	}
	m, err := v.f.ReadAt(p[n:], v.off+at-int64(len(v.hdr)))
	return n + m, err
}

// decodeAt decodes flow record n, held by block bi decoded as d, into f.
func decodeAt(d *decodedBlock, bi blockInfo, n int, f *nfcap.Flow) error {
	return nfcap.DecodeFlow(d.record(n-bi.first), f)
}
