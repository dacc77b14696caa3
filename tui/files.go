package tui

// The Files screen: the nfcapd files under a directory (recursively, as
// nfcapd -S lays them out), newest first, grouped by day, with their
// subdirectories on top for narrowing down. Space marks files for a
// commit; enter opens a file in the preview or a directory in place.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/netdumper/netdumper/internal/nfdir"
	"github.com/netdumper/netdumper/nfcap"
)

// maxListed bounds the files one directory listing shows.
const maxListed = 50_000

// metaBatch is how many files one header-reading command handles.
const metaBatch = 64

// ---- MSG ----

type listMsg struct {
	gen       int
	dir       string
	dirs      []string // subdirectory names
	files     []nfdir.File
	truncated bool
	err       error
}

// openPreviewMsg asks the root to open a file in the preview.
type openPreviewMsg struct{ path string }

// openCommitMsg asks the root to open the commit dialog for files.
type openCommitMsg struct{ paths []string }

// ---- MODEL ----

type itemKind uint8

const (
	itemParent itemKind = iota
	itemDir
	itemDay
	itemFile
)

type fileItem struct {
	kind  itemKind
	name  string // base name, or the day label
	path  string
	start time.Time
	size  int64
	files int // day rows: files that day
}

type filesScreen struct {
	c     *common
	dir   string
	items []fileItem
	nav   scroller

	marked    map[string]bool
	gen       int
	listing   bool
	listErr   error
	truncated bool
	nfiles    int

	metaPending map[string]bool
	counting    bool
	seen        map[string]bool // files that have been on screen: count their usernames

	selectAfterList string
	nameWidth       int // widest name of the listing // after a chdir: put the cursor on this path (the directory we came from)

	width, height int
}

func newFilesScreen(c *common, dir string) *filesScreen {
	return &filesScreen{c: c, dir: dir, marked: map[string]bool{}, metaPending: map[string]bool{}, seen: map[string]bool{}}
}

func (s *filesScreen) init() tea.Cmd { return s.list() }

// ---- UPDATE ----

func (s *filesScreen) setSize(w, h int) {
	s.width, s.height = w, h
	s.nav.setHeight(s.rowsHeight())
}

func (s *filesScreen) rowsHeight() int { return max(1, s.height-3) }

func (s *filesScreen) list() tea.Cmd {
	s.gen++
	s.listing = true
	gen, dir, ctx := s.gen, s.dir, s.c.ctx
	return func() tea.Msg { return listDir(ctx, gen, dir) }
}

func listDir(ctx context.Context, gen int, dir string) listMsg {
	m := listMsg{gen: gen, dir: dir}
	ents, err := os.ReadDir(dir)
	if err != nil {
		m.err = err
		return m
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			m.dirs = append(m.dirs, e.Name())
		} else if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
				m.dirs = append(m.dirs, e.Name())
			}
		}
	}
	errFull := errors.New("full")
	err = nfdir.Walk(ctx, []string{dir}, func(f nfdir.File) error {
		if len(m.files) >= maxListed {
			m.truncated = true
			return errFull
		}
		m.files = append(m.files, f)
		return nil
	})
	switch sk := nfdir.Skipped(err); {
	case len(sk) > 1: // one line in the header, not one per entry
		m.err = fmt.Errorf("%w (and %s that cannot be read)", sk[0], count(len(sk)-1, "more entry", "more entries"))
	case err != nil && !errors.Is(err, errFull):
		m.err = err
	}
	return m
}

func (s *filesScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case listMsg:
		if msg.gen != s.gen {
			return nil
		}
		s.listing = false
		s.setItems(msg)
		return s.schedule()
	case metaMsg:
		for _, r := range msg.results {
			delete(s.metaPending, r.path)
			if r.size == 0 && r.mtime.IsZero() {
				e := s.c.cache.get(r.path, -1, time.Time{})
				e.metaKnown, e.err = true, r.meta.err
				continue
			}
			e := s.c.cache.get(r.path, r.size, r.mtime)
			users, known, uerr, counting, sum := e.users, e.usersKnown, e.usersErr, e.counting, e.summary
			*e = r.meta
			e.size, e.mtime = r.size, r.mtime
			e.users, e.usersKnown, e.usersErr, e.counting, e.summary = users, known, uerr, counting, sum
		}
		return s.schedule()
	case usersMsg:
		s.counting = false
		if msg.err == nil || !errors.Is(msg.err, context.Canceled) {
			e := s.c.cache.get(msg.path, msg.size, msg.mtime)
			e.counting = false
			if msg.err != nil {
				e.usersErr = msg.err
				e.usersKnown = true
			} else {
				e.users, e.usersKnown = msg.users, true
				if e.records < 0 {
					e.records = msg.records
				}
			}
		}
		return s.schedule()
	case tea.KeyMsg:
		return s.key(msg)
	}
	return nil
}

func (s *filesScreen) key(msg tea.KeyMsg) tea.Cmd {
	k := s.c.keys
	switch {
	case key.Matches(msg, k.Mark):
		if it := s.selected(); it != nil && it.kind == itemFile {
			if s.marked[it.path] {
				delete(s.marked, it.path)
			} else {
				s.marked[it.path] = true
			}
			s.step(1)
		}
	case key.Matches(msg, k.Up):
		s.step(-1)
	case key.Matches(msg, k.Down):
		s.step(1)
	case key.Matches(msg, k.PageUp):
		s.nav.page(-1)
		s.skipDay(-1)
	case key.Matches(msg, k.PageDown):
		s.nav.page(1)
		s.skipDay(1)
	case key.Matches(msg, k.Top):
		s.nav.moveTo(0)
		s.skipDay(1)
	case key.Matches(msg, k.Bottom):
		s.nav.moveTo(s.nav.n - 1)
		s.skipDay(-1)
	case key.Matches(msg, k.Open):
		return s.open()
	case key.Matches(msg, k.Parent):
		return s.chdir(filepath.Dir(s.dir))
	case key.Matches(msg, k.MarkAll):
		s.toggleAll()
	case key.Matches(msg, k.Commit):
		if paths := s.commitPaths(); len(paths) > 0 {
			return func() tea.Msg { return openCommitMsg{paths} }
		}
	case key.Matches(msg, k.Refresh):
		return s.list()
	}
	return s.schedule()
}

// open enters a directory or previews a file.
func (s *filesScreen) open() tea.Cmd {
	it := s.selected()
	if it == nil {
		return nil
	}
	switch it.kind {
	case itemParent, itemDir:
		return s.chdir(it.path)
	case itemFile:
		p := it.path
		return func() tea.Msg { return openPreviewMsg{p} }
	}
	return nil
}

func (s *filesScreen) chdir(dir string) tea.Cmd {
	if dir == s.dir {
		return nil
	}
	prev := s.dir
	s.dir = dir
	s.items, s.nav = nil, scroller{height: s.nav.height}
	s.selectAfterList = prev
	return s.list()
}

func (s *filesScreen) toggleAll() {
	all := true
	for _, it := range s.items {
		if it.kind == itemFile && !s.marked[it.path] {
			all = false
			break
		}
	}
	for _, it := range s.items {
		if it.kind == itemFile {
			if all {
				delete(s.marked, it.path)
			} else {
				s.marked[it.path] = true
			}
		}
	}
}

// commitPaths returns the marked files, or the selected one when none is
// marked.
func (s *filesScreen) commitPaths() []string {
	var paths []string
	for p := range s.marked {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		if it := s.selected(); it != nil && it.kind == itemFile {
			paths = append(paths, it.path)
		}
	}
	slices.Sort(paths)
	return paths
}

func (s *filesScreen) selected() *fileItem {
	if s.nav.cursor < 0 || s.nav.cursor >= len(s.items) {
		return nil
	}
	return &s.items[s.nav.cursor]
}

// step moves by d rows, jumping over day headers.
func (s *filesScreen) step(d int) {
	s.nav.move(d)
	s.skipDay(d)
}

// skipDay moves the cursor off a day header, in direction d if it can.
func (s *filesScreen) skipDay(d int) {
	if d == 0 {
		d = 1
	}
	for _, dir := range []int{d, -d} {
		i := s.nav.cursor
		for i >= 0 && i < len(s.items) && s.items[i].kind == itemDay {
			i += dir
		}
		if i >= 0 && i < len(s.items) {
			s.nav.moveTo(i)
			return
		}
	}
}

func (s *filesScreen) click(y int) tea.Cmd {
	r := y - 2
	if r < 0 || r >= s.nav.height {
		return nil
	}
	i := s.nav.offset + r
	if i >= len(s.items) || s.items[i].kind == itemDay {
		return nil
	}
	if i == s.nav.cursor {
		return s.open() // a click on the selected row opens it
	}
	s.nav.moveTo(i)
	return s.schedule()
}

func (s *filesScreen) wheel(d int) tea.Cmd {
	s.nav.scroll(d)
	s.skipDay(d)
	return s.schedule()
}

// setItems builds the rows from a listing: "..", the subdirectories, then
// the files newest first under one header per day.
func (s *filesScreen) setItems(m listMsg) {
	s.listErr, s.truncated = m.err, m.truncated
	var sel string
	if it := s.selected(); it != nil {
		sel = it.path
	}
	if s.selectAfterList != "" {
		sel, s.selectAfterList = s.selectAfterList, ""
	}
	items := []fileItem{{kind: itemParent, name: "..", path: filepath.Dir(m.dir)}}
	for _, d := range m.dirs {
		items = append(items, fileItem{kind: itemDir, name: d + "/", path: filepath.Join(m.dir, d)})
	}
	files := slices.Clone(m.files)
	for _, f := range files {
		s.c.cache.check(f.Path, f.Size, f.ModTime)
	}
	for i := range files {
		if t, ok := nfdir.ParseName(files[i].Path, s.c.loc); ok {
			files[i].Start = t
		}
	}
	slices.SortStableFunc(files, func(a, b nfdir.File) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	s.nfiles = len(files)
	day := ""
	dayAt := -1
	for _, f := range files {
		d := f.Start.In(s.c.loc).Format("2006-01-02 Mon")
		if f.Start.IsZero() {
			d = "undated"
		}
		if d != day {
			day = d
			dayAt = len(items)
			items = append(items, fileItem{kind: itemDay, name: d})
		}
		items[dayAt].files++
		items[dayAt].size += f.Size
		rel, err := filepath.Rel(m.dir, f.Path)
		if err != nil {
			rel = filepath.Base(f.Path)
		}
		items = append(items, fileItem{kind: itemFile, name: rel, path: f.Path, start: f.Start, size: f.Size})
	}
	s.items = items
	s.nameWidth = 4
	for _, it := range items {
		if it.kind != itemDay {
			s.nameWidth = max(s.nameWidth, textWidth(it.name))
		}
	}
	s.nav.setLen(len(items))
	at := -1
	for i, it := range items {
		if it.path == sel && it.kind != itemDay {
			at = i
			break
		}
	}
	if at < 0 {
		at = 0
		// Start on the newest file rather than on "..".
		for i, it := range items {
			if it.kind == itemFile {
				at = i
				break
			}
		}
	}
	s.nav.moveTo(at)
}

// schedule starts loading what the rows on screen need: headers of files
// not read yet, and the username count of one file at a time.
func (s *filesScreen) schedule() tea.Cmd {
	var cmds []tea.Cmd
	var need []string
	from, to := s.nav.visible()
	for i := from; i < to && i < len(s.items); i++ {
		it := &s.items[i]
		if it.kind != itemFile {
			continue
		}
		s.seen[it.path] = true
		e := s.c.cache.peek(it.path)
		if (e == nil || !e.metaKnown) && !s.metaPending[it.path] {
			need = append(need, it.path)
			s.metaPending[it.path] = true
			if len(need) == metaBatch {
				cmds = append(cmds, loadMeta(need))
				need = nil
			}
		}
	}
	if len(need) > 0 {
		cmds = append(cmds, loadMeta(need))
	}
	if !s.counting {
		// Count usernames for the files seen, on screen first.
		var next string
		for pass := 0; pass < 2 && next == ""; pass++ {
			lo, hi := from, to
			if pass == 1 {
				lo, hi = 0, len(s.items)
			}
			for i := lo; i < hi && i < len(s.items); i++ {
				it := &s.items[i]
				if it.kind != itemFile || !s.seen[it.path] {
					continue
				}
				e := s.c.cache.peek(it.path)
				if e != nil && e.metaKnown && e.err == nil && !e.usersKnown && !e.counting {
					next = it.path
					e.counting = true
					break
				}
			}
		}
		if next != "" {
			s.counting = true
			cmds = append(cmds, countUsers(s.c.ctx, next))
		}
	}
	return tea.Batch(cmds...)
}

// ---- VIEW ----

// Columns of the files table.
var fileCols = []struct {
	title string
	w     int
	right bool
}{
	{"NAME", 0, false}, // takes the remaining width
	{"WINDOW", 20, false},
	{"RECORDS", 9, true},
	{"SIZE", 9, true},
	{"COMP", 5, false},
	{"USERNAMES", 9, true},
}

func (s *filesScreen) view() string {
	st := s.c.st
	var b strings.Builder
	title := " " + s.dir
	switch {
	case s.listing && s.items == nil:
		title += " · reading…"
	case s.listErr != nil:
		title += " · " + s.listErr.Error()
	default:
		title += " · " + count(s.nfiles, "file", "files")
		if s.truncated {
			title += fmt.Sprintf(" (first %d)", maxListed)
		}
		if n := len(s.marked); n > 0 {
			title += fmt.Sprintf(" · %d marked", n)
		}
	}
	b.WriteString(st.accent.render(padLine(title, s.width)))
	b.WriteByte('\n')

	widths := s.colWidths()
	line := make([]byte, 0, 2*s.width)
	line = append(line, "   "...)
	for i, c := range fileCols {
		if i > 0 {
			line = append(line, ' ')
		}
		line = appendCell(line, c.title, widths[i], c.right)
	}
	b.WriteString(st.Header.Render(cut(string(line), s.width)))
	b.WriteByte('\n')

	from, to := s.nav.visible()
	for i := from; i < to; i++ {
		line = s.appendRow(line[:0], &s.items[i], i == s.nav.cursor, widths)
		b.Write(line)
		b.WriteByte('\n')
	}
	for i := to - from; i < s.nav.height; i++ {
		if i == 0 && s.nfiles == 0 && !s.listing {
			b.WriteString(st.dim.render("   no nfcapd.* files here"))
		}
		b.WriteByte('\n')
	}
	if it := s.selected(); it != nil && it.kind == itemFile {
		if e := s.c.cache.peek(it.path); e != nil && e.metaKnown && e.err != nil {
			// The whole error of the file under the cursor: its row
			// has room for the gist only.
			b.WriteString(st.bad.render(padLine(" "+it.name+": "+errDetail(e.err, it.path), s.width)))
			return b.String()
		}
	}
	b.WriteString(st.dim.render(padLine(" enter open · space mark · a mark all · c commit · ← parent · r reload", s.width)))
	return b.String()
}

// errDetail is err without the path of the file it is about, which the
// screen names already.
func errDetail(err error, path string) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == path {
		return pe.Op + ": " + pe.Err.Error()
	}
	return strings.TrimPrefix(err.Error(), path+": ")
}

func (s *filesScreen) colWidths() []int {
	w := make([]int, len(fileCols))
	rest := s.width - 3
	for i, c := range fileCols {
		if i > 0 {
			w[i] = c.w
			rest -= c.w + 1
		}
	}
	w[0] = max(12, min(rest, s.nameWidth))
	return w
}

func (s *filesScreen) appendRow(dst []byte, it *fileItem, cur bool, widths []int) []byte {
	st := s.c.st
	if it.kind == itemDay {
		text := fmt.Sprintf(" ── %s · %s · %s ", it.name, count(it.files, "file", "files"), humanBytes(it.size))
		return append(dst, st.day.render(padLine(text, s.width))...)
	}
	row := paint{}
	switch {
	case cur:
		row = st.cursor
	case s.marked[it.path]:
		row = st.marked
	case it.kind != itemFile:
		row = st.dir
	}
	dst = append(dst, row.pre...)
	if cur {
		dst = append(dst, '>')
	} else {
		dst = append(dst, ' ')
	}
	if s.marked[it.path] {
		dst = append(dst, '*')
	} else {
		dst = append(dst, ' ')
	}
	dst = append(dst, ' ')
	var cells [6]string
	cells[0] = it.name
	span := false // cells[1] takes the RECORDS column too
	switch it.kind {
	case itemParent, itemDir:
		cells[1] = "directory"
	case itemFile:
		span = s.fileCells(&cells, it)
	}
	n := 3
	for i := range fileCols {
		if i == 2 && span {
			continue
		}
		if i > 0 {
			if n+1 >= s.width {
				break
			}
			dst = append(dst, ' ')
			n++
		}
		cw := widths[i]
		if i == 1 && span {
			cw += 1 + widths[2]
		}
		w := min(cw, s.width-n)
		if w <= 0 {
			break
		}
		dst = appendCell(dst, cells[i], w, fileCols[i].right)
		n += w
	}
	if n < s.width {
		dst = appendSpaces(dst, s.width-n)
	}
	return append(dst, row.post...)
}

// fileCells fills the cells of a file's row. It reports whether cells[1]
// spans the WINDOW and RECORDS columns: the reason why a file cannot be
// read, which is all there is to say about it.
func (s *filesScreen) fileCells(cells *[6]string, it *fileItem) (span bool) {
	cells[3] = humanBytes(it.size)
	e := s.c.cache.peek(it.path)
	if e == nil || !e.metaKnown {
		cells[1], cells[2], cells[4], cells[5] = "…", "…", "…", "…"
		return false
	}
	if e.err != nil {
		cells[1] = "unreadable: " + shortReason(e.err)
		return true
	}
	if !e.first.IsZero() {
		cells[1] = timeWindow(e.first.In(s.c.loc), e.last.In(s.c.loc))
	} else {
		cells[1] = "-"
	}
	if e.records >= 0 {
		cells[2] = strconv.FormatInt(e.records, 10)
	} else {
		cells[2] = "?"
	}
	cells[4] = e.comp.String()
	switch {
	case !e.usersKnown:
		cells[5] = "…"
	case e.usersErr != nil:
		cells[5] = "error"
	default:
		cells[5] = strconv.FormatInt(e.users, 10)
	}
	return false
}

// shortReason says in a few words why a file cannot be read, for its
// row, which names the file already: the errors themselves start with
// the path, and that alone fills the column.
func shortReason(err error) string {
	for _, r := range []struct {
		err  error
		text string
	}{
		{fs.ErrNotExist, "file gone"},
		{fs.ErrPermission, "permission denied"},
		{nfcap.ErrBadMagic, "not an nfdump file"},
		{nfcap.ErrLegacyLayout, "nfdump 1.6 file"},
		{nfcap.ErrUnsupportedLayout, "unknown layout"},
		{nfcap.ErrEncrypted, "encrypted"},
		{nfcap.ErrUnsupportedCompression, "unknown compressor"},
		{nfcap.ErrTruncated, "truncated"},
		{nfcap.ErrCorrupt, "corrupt"},
		{nfcap.ErrTooLarge, "too large"},
		{nfcap.ErrDecompress, "cannot decompress"},
	} {
		if errors.Is(err, r.err) {
			return r.text
		}
	}
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err.Error() // "is a directory", "input/output error"
	}
	// Other errors name the file first ("PATH: not a regular file"): keep
	// the last part.
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// humanBytes formats a size: 512 B, 1.5 KiB, 20.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// timeWindow formats first–last as times of day, with "+Nd" when last is
// N days later.
func timeWindow(first, last time.Time) string {
	s := first.Format("15:04:05") + "–" + last.Format("15:04:05")
	y1, m1, d1 := first.Date()
	y2, m2, d2 := last.Date()
	a := time.Date(y1, m1, d1, 0, 0, 0, 0, time.UTC)
	b := time.Date(y2, m2, d2, 0, 0, 0, 0, time.UTC)
	if n := int(b.Sub(a).Hours() / 24); n > 0 {
		s += fmt.Sprintf("+%dd", n)
	}
	return s
}
