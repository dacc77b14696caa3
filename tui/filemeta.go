package tui

// What the Files screen shows about each file, loaded in the background
// and cached by path (an entry is dropped when the file's size or
// modification time changes, e.g. after a commit):
//   - the header and appendix (compression, time window, record count):
//     two small reads per file, done for the rows on screen;
//   - how many records already carry a username: this needs a full
//     decode, so it runs one file at a time, for the rows that have been
//     on screen, and shows "…" until known.

import (
	"context"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/nfcap"
)

// fileMeta is what is known about one flow file.
type fileMeta struct {
	size  int64
	mtime time.Time

	metaKnown bool
	err       error // the header or appendix could not be read
	comp      nfcap.Compression
	first     time.Time // zero when the file has no stat record
	last      time.Time
	records   int64 // -1 when unknown
	blocks    uint32

	usersKnown bool
	usersErr   error
	users      int64 // records carrying a username
	counting   bool

	// summary is the enrichment dry run of the file, when the preview or
	// the commit dialog computed one.
	summary *enrich.Summary
}

// fileCache holds fileMeta by path. It is used from Update only.
type fileCache struct {
	m map[string]*fileMeta
}

func newFileCache() *fileCache { return &fileCache{m: map[string]*fileMeta{}} }

// get returns the entry for path if it still describes a file of that
// size and modification time, else a fresh one.
func (c *fileCache) get(path string, size int64, mtime time.Time) *fileMeta {
	e := c.m[path]
	if e != nil && e.size == size && e.mtime.Equal(mtime) {
		return e
	}
	e = &fileMeta{size: size, mtime: mtime, records: -1}
	c.m[path] = e
	return e
}

// peek returns the entry for path without checking it: the listing checks
// the entries of the files it lists (see check), each time it is read.
func (c *fileCache) peek(path string) *fileMeta { return c.m[path] }

// check drops the entry for path when the file is no longer the one it
// describes (another size or modification time: enriched by another
// process, replaced by a copy).
func (c *fileCache) check(path string, size int64, mtime time.Time) {
	if e := c.m[path]; e != nil && (e.size != size || !e.mtime.Equal(mtime)) {
		delete(c.m, path)
	}
}

// fresh returns the entry for path if the file on disk is still the one it
// describes, else drops it and returns nil.
func (c *fileCache) fresh(path string) *fileMeta {
	e := c.m[path]
	if e == nil {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != e.size || !fi.ModTime().Equal(e.mtime) {
		delete(c.m, path)
		return nil
	}
	return e
}

// forget drops path (after the file was rewritten).
func (c *fileCache) forget(path string) { delete(c.m, path) }

// ---- MSG ----

type metaResult struct {
	path  string
	size  int64
	mtime time.Time
	meta  fileMeta
}

type metaMsg struct{ results []metaResult }

type usersMsg struct {
	path    string
	size    int64
	mtime   time.Time
	users   int64
	records int64
	err     error
}

// ---- COMMANDS ----

// loadMeta reads the header and appendix of each path.
func loadMeta(paths []string) tea.Cmd {
	return func() tea.Msg {
		out := make([]metaResult, 0, len(paths))
		for _, p := range paths {
			r := metaResult{path: p, meta: fileMeta{records: -1, metaKnown: true}}
			fi, err := os.Stat(p)
			if err != nil {
				r.meta.err = err
				out = append(out, r)
				continue
			}
			r.size, r.mtime = fi.Size(), fi.ModTime()
			rd, err := nfcap.OpenFile(p, nfcap.ReaderOptions{ReadAhead: -1})
			if err != nil {
				r.meta.err = err
				out = append(out, r)
				continue
			}
			h := rd.Header()
			r.meta.comp, r.meta.blocks = h.Compression, h.NumBlocks
			if a := rd.Appendix(); a.HasStat {
				r.meta.records = int64(a.Stat.NumFlows)
				if a.Stat.FirstSeen > 0 && a.Stat.FirstSeen <= a.Stat.LastSeen {
					r.meta.first, r.meta.last = a.Stat.First(), a.Stat.Last()
				}
			}
			rd.Close()
			out = append(out, r)
		}
		return metaMsg{out}
	}
}

// countUsers decodes the whole file at path, counting the flow records
// and those that carry a (non-empty) username.
func countUsers(ctx context.Context, path string) tea.Cmd {
	return func() tea.Msg {
		m := usersMsg{path: path}
		fi, err := os.Stat(path)
		if err != nil {
			m.err = err
			return m
		}
		m.size, m.mtime = fi.Size(), fi.ModTime()
		r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{Workers: 1})
		if err != nil {
			m.err = err
			return m
		}
		defer r.Close()
		for f, err := range r.Flows() {
			if err != nil {
				m.err = err
				return m
			}
			m.records++
			if f.Username != "" {
				m.users++
			}
			if m.records%65536 == 0 && ctx.Err() != nil {
				m.err = ctx.Err()
				return m
			}
		}
		return m
	}
}
