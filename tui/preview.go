package tui

// The Preview screen: the records of one file as nfdump will print them
// after the commit (nfdump's %line columns and %uname), a letter in the
// gutter saying how each label came about, and a header with the match
// statistics of the whole file. Rows are decoded a few pages at a time
// from the blocks that hold them (see flowFile); the statistics come from
// a background pass over the file.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/flowfmt"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

// previewFormat is what the preview prints: nfdump's line format and the
// username column.
const previewFormat = "fmt:%line %uname"

// Gutter letters of the preview.
const (
	markExact    = 'E' // labelled from the socket with this exact 5-tuple
	markListener = 'L' // labelled from a listener on the local port
	markWildcard = 'W' // labelled from a wildcard listener
	markKept     = '=' // already carries a username, which is kept
	markUnknown  = '?' // no binding matched: the --unknown text
	markNone     = '-' // no binding matched: stays without a username
	markBad      = '!' // the record could not be decoded
)

// ---- MSG ----

type previewOpenedMsg struct {
	gen     int
	ff      *flowFile
	pager   *pager
	planErr error
	err     error
}

type indexMsg struct{ gen int }

type rowsMsg struct {
	gen, seq int
	from     int
	rows     []previewRow
	err      error
}

type searchDoneMsg struct {
	gen     int
	seq     int // which search of the file: only the last one counts
	query   string
	found   int // record number, -1 when not found
	scanned int
	err     error
}

// ---- MODEL ----

type previewRow struct {
	line  string // the %line columns
	uname string // what %uname prints after the commit
	mark  byte
}

// pager formats rows; one goroutine at a time.
type pager struct {
	mu        sync.Mutex
	plan      *enrich.Plan
	fm        *flowfmt.Format
	lineCols  int // columns of %line (the last column is %uname)
	buf       []byte
	f         nfcap.Flow
	overwrite bool
}

func newPager(plan *enrich.Plan, loc *flowfmt.Options, overwrite bool) *pager {
	fm := flowfmt.MustParse(previewFormat, *loc)
	return &pager{plan: plan, fm: fm, lineCols: len(fm.Columns()) - 2, overwrite: overwrite}
}

// row decodes and formats flow record n of block d.
func (p *pager) row(d *decodedBlock, bi blockInfo, n int) previewRow {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := &p.f
	if err := decodeAt(d, bi, n, f); err != nil {
		return previewRow{line: "undecodable record: " + err.Error(), mark: markBad}
	}
	return p.format(f)
}

func (p *pager) format(f *nfcap.Flow) previewRow {
	key := tracker.FlowKey{
		Proto: tracker.Proto(f.Proto),
		Src:   netip.AddrPortFrom(f.SrcAddr, f.SrcPort),
		Dst:   netip.AddrPortFrom(f.DstAddr, f.DstPort),
	}
	m := p.plan.Index.Lookup(key, f.First(), f.Last())
	label, ok := p.plan.Label(f)
	eff := p.plan.Effective(f, label, ok)
	var mark byte
	switch {
	case f.Username != "" && eff == f.Username:
		mark = markKept
	case m.OK() && m.Kind == tracker.MatchExact:
		mark = markExact
	case m.OK() && m.Kind == tracker.MatchListener:
		mark = markListener
	case m.OK():
		mark = markWildcard
	case eff != "":
		mark = markUnknown
	default:
		mark = markNone
	}
	f.Username = eff
	b := p.buf[:0]
	for i := 0; i < p.lineCols; i++ {
		b = p.fm.AppendColumn(b, i, f)
	}
	line := string(b)
	b = p.fm.AppendColumn(b[:0], p.lineCols+1, f)
	p.buf = b
	return previewRow{line: line, uname: string(b), mark: mark}
}

type previewScreen struct {
	c   *common
	gen int

	path    string
	ff      *flowFile
	pg      *pager
	opening bool
	err     error
	planErr error
	prog    indexProgress
	ctx     context.Context
	cancel  context.CancelFunc

	indexCh chan struct{}

	nav  scroller
	xoff int

	winFrom int
	win     []previewRow
	rowsErr error
	loadSeq int
	loading [2]int // range being loaded; [0,0] when none
	follow  bool   // G while indexing: follow the end

	input      textinput.Model
	searching  bool // the search input has the focus
	query      string
	searchBusy bool
	searchPg   *pager
	searchMsg  string
	searchStop context.CancelFunc
	searchSeq  int

	lineHeader string // nfdump's title line of the %line columns
	colStarts  []int  // offsets of the %line columns in a line
	colEnds    []int
	width      int
	height     int
}

func newPreviewScreen(c *common) *previewScreen {
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "search the records (any text of the line or the username)"
	in.CharLimit = 256
	fm := flowfmt.MustParse(previewFormat, flowfmt.Options{Location: c.loc})
	s := &previewScreen{c: c, input: in, lineHeader: strings.TrimSuffix(fm.Header(), " "+unameTitle)}
	// Where the %line columns start and end, for cutting and scrolling
	// at column boundaries.
	pos := 0
	for _, col := range fm.Columns() {
		if col.Token == "%uname" {
			break
		}
		if col.Token != "" {
			s.colStarts = append(s.colStarts, pos)
			s.colEnds = append(s.colEnds, pos+len(col.Header))
		}
		pos += len(col.Header)
	}
	return s
}

// ---- UPDATE ----

func (s *previewScreen) setSize(w, h int) {
	s.width, s.height = w, h
	s.input.Width = max(10, w-10)
	s.nav.setHeight(s.rowsHeight())
}

// Lines of the preview body: 4 header lines, the column header, the rows
// and the footer.
func (s *previewScreen) rowsHeight() int { return max(1, s.height-6) }

func (s *previewScreen) focused() bool { return s.searching }

// open shows path, dropping whatever was shown.
func (s *previewScreen) open(path string) tea.Cmd {
	s.close()
	s.gen++
	s.path, s.opening, s.err, s.planErr = path, true, nil, nil
	s.prog = indexProgress{}
	s.nav = scroller{height: s.rowsHeight()}
	s.win, s.winFrom, s.rowsErr, s.loading, s.follow, s.xoff = nil, 0, nil, [2]int{}, false, 0
	s.query, s.searchMsg, s.searchPg = "", "", nil
	s.ctx, s.cancel = context.WithCancel(s.c.ctx)
	gen, ctx, c := s.gen, s.ctx, s.c
	return func() tea.Msg {
		ff, err := openFlowFile(path)
		if err != nil {
			return previewOpenedMsg{gen: gen, err: err}
		}
		pg, perr := c.newPager(ctx, path)
		return previewOpenedMsg{gen: gen, ff: ff, pager: pg, planErr: perr}
	}
}

// close stops the background work on the shown file and closes it.
func (s *previewScreen) close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.searchStop != nil {
		s.searchStop()
	}
	if s.ff != nil {
		// A load or the index pass may still read it: they fail
		// harmlessly on a closed file, and their results are dropped.
		s.ff.close()
	}
	s.ff, s.pg = nil, nil
}

func (s *previewScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case previewOpenedMsg:
		if msg.gen != s.gen {
			if msg.ff != nil {
				msg.ff.close()
			}
			return nil
		}
		s.opening = false
		if msg.err == nil && msg.pager == nil { // not even the empty plan: the file's window is unreadable
			msg.ff.close()
			msg.err = msg.planErr
		}
		if msg.err != nil {
			s.err = msg.err
			return nil
		}
		s.ff, s.pg, s.planErr = msg.ff, msg.pager, msg.planErr
		s.prog = s.ff.progress()
		return tea.Batch(s.startIndex(), s.waitIndex())
	case indexMsg:
		if msg.gen != s.gen || s.ff == nil {
			return nil
		}
		s.prog = s.ff.progress()
		s.nav.setLen(s.prog.flows)
		if s.follow {
			s.nav.moveTo(s.nav.n - 1)
			if s.prog.done {
				s.follow = false
			}
		}
		if s.prog.done {
			s.c.notePreviewStats(s.path, s.ff, s.prog)
			if s.prog.err != nil {
				s.c.log.Warn("preview index", "file", s.path, "err", s.prog.err)
			}
			return s.ensureRows()
		}
		return tea.Batch(s.waitIndex(), s.ensureRows())
	case rowsMsg:
		if msg.gen != s.gen || msg.seq != s.loadSeq {
			return nil
		}
		s.loading = [2]int{}
		s.rowsErr = msg.err
		s.winFrom, s.win = msg.from, msg.rows
		return s.ensureRows()
	case searchDoneMsg:
		if msg.gen != s.gen || msg.seq != s.searchSeq || msg.query != s.query {
			return nil
		}
		s.searchBusy, s.searchStop = false, nil
		switch {
		case msg.err != nil && msg.err == context.Canceled:
			s.searchMsg = "search cancelled"
		case msg.err != nil:
			s.searchMsg = "search: " + msg.err.Error()
		case msg.found < 0:
			s.searchMsg = fmt.Sprintf("%q not found in %s", msg.query, count(msg.scanned, "record", "records"))
			if !s.prog.done {
				s.searchMsg += " (indexing goes on: try again)"
			}
		default:
			s.searchMsg = fmt.Sprintf("%q at record %d", msg.query, msg.found+1)
			s.nav.moveTo(msg.found)
			return s.ensureRows()
		}
		return nil
	case tea.KeyMsg:
		return s.key(msg)
	}
	return nil
}

func (s *previewScreen) key(msg tea.KeyMsg) tea.Cmd {
	k := s.c.keys
	if s.searching {
		switch {
		case key.Matches(msg, k.Accept):
			s.searching = false
			s.input.Blur()
			s.query = s.input.Value()
			return s.startSearch(1)
		case key.Matches(msg, k.Cancel):
			s.searching = false
			s.input.Blur()
			return nil
		default:
			var cmd tea.Cmd
			s.input, cmd = s.input.Update(msg)
			return cmd
		}
	}
	if s.searchBusy && key.Matches(msg, k.Cancel) {
		s.searchStop()
		return nil
	}
	prev := s.nav.cursor
	switch {
	case key.Matches(msg, k.Up):
		s.nav.move(-1)
	case key.Matches(msg, k.Down):
		s.nav.move(1)
	case key.Matches(msg, k.PageUp):
		s.nav.page(-1)
	case key.Matches(msg, k.PageDown):
		s.nav.page(1)
	case key.Matches(msg, k.Top):
		s.nav.moveTo(0)
	case key.Matches(msg, k.Bottom):
		s.nav.moveTo(s.nav.n - 1)
		s.follow = !s.prog.done
	case key.Matches(msg, k.Left):
		x := 0
		for _, c := range s.colStarts {
			if c < s.xoff {
				x = c
			}
		}
		s.xoff = x
	case key.Matches(msg, k.Right):
		for _, c := range s.colStarts[:max(0, len(s.colStarts)-1)] {
			if c > s.xoff {
				s.xoff = c
				break
			}
		}
	case key.Matches(msg, k.Search):
		s.searching = true
		s.input.SetValue(s.query)
		s.input.CursorEnd()
		return s.input.Focus()
	case key.Matches(msg, k.NextMatch):
		return s.startSearch(1)
	case key.Matches(msg, k.PrevMatch):
		return s.startSearch(-1)
	case key.Matches(msg, k.Commit):
		if s.ff != nil {
			p := s.path
			return func() tea.Msg { return openCommitMsg{[]string{p}} }
		}
	case key.Matches(msg, k.Back):
		return func() tea.Msg { return switchScreenMsg{screenFiles} }
	}
	if s.nav.cursor != prev && !key.Matches(msg, k.Bottom) {
		s.follow = false
	}
	return s.ensureRows()
}

func (s *previewScreen) click(y int) {
	if r := y - 5; r >= 0 && r < s.nav.height {
		s.nav.moveTo(s.nav.offset + r)
	}
}

func (s *previewScreen) wheel(d int) tea.Cmd {
	s.nav.scroll(d)
	return s.ensureRows()
}

func (s *previewScreen) startIndex() tea.Cmd {
	ff, ctx := s.ff, s.ctx
	ch := make(chan struct{}, 1)
	s.indexCh = ch
	// The pass counts on a fork of the preview's plan: the bindings were
	// fetched once, when the file was opened (a tracker that does not
	// answer costs its timeout once, not once more here).
	var plan *enrich.Plan
	if s.pg != nil && s.planErr == nil {
		plan = s.pg.plan.Fork()
	}
	return func() tea.Msg {
		ff.runIndex(ctx, plan, func() {
			select {
			case ch <- struct{}{}:
			default:
			}
		})
		return nil
	}
}

func (s *previewScreen) waitIndex() tea.Cmd {
	ch, ctx, gen := s.indexCh, s.ctx, s.gen
	return func() tea.Msg {
		select {
		case <-ch:
			return indexMsg{gen}
		case <-ctx.Done():
			return nil
		}
	}
}

// ensureRows loads the rows around the screen when some on screen are
// missing: a screen above and two below, so that scrolling on rarely
// waits.
func (s *previewScreen) ensureRows() tea.Cmd {
	if s.ff == nil || s.pg == nil || s.nav.n == 0 {
		return nil
	}
	from, to := s.nav.visible()
	if from >= s.winFrom && to <= s.winFrom+len(s.win) {
		return nil
	}
	if s.loading != [2]int{} && from >= s.loading[0] && to <= s.loading[1] {
		return nil
	}
	h := max(s.nav.height, 1)
	lo := max(0, from-h)
	hi := min(s.nav.n, to+2*h)
	s.loadSeq++
	s.loading = [2]int{lo, hi}
	seq, gen, ff, pg := s.loadSeq, s.gen, s.ff, s.pg
	return func() tea.Msg {
		m := rowsMsg{gen: gen, seq: seq, from: lo}
		m.rows, m.err = loadRows(ff, pg, lo, hi)
		return m
	}
}

// loadRows formats the flow records [from, to).
func loadRows(ff *flowFile, pg *pager, from, to int) ([]previewRow, error) {
	rows := make([]previewRow, 0, to-from)
	for n := from; n < to; {
		bi, ok := ff.blockOf(n)
		if !ok {
			break
		}
		d, err := ff.block(bi)
		if err != nil {
			return rows, err
		}
		for ; n < to && n < bi.first+bi.flows; n++ {
			rows = append(rows, pg.row(d, bi, n))
		}
	}
	return rows, nil
}

// startSearch looks for the query from the record after (dir 1) or before
// (dir -1) the cursor, wrapping around once.
func (s *previewScreen) startSearch(dir int) tea.Cmd {
	if s.query == "" || s.ff == nil {
		return nil
	}
	if s.searchStop != nil {
		s.searchStop()
	}
	ctx, stop := context.WithCancel(s.ctx)
	s.searchStop, s.searchBusy = stop, true
	s.searchSeq++
	s.searchMsg = fmt.Sprintf("searching for %q…", s.query)
	gen, seq, ff, q, start, total := s.gen, s.searchSeq, s.ff, s.query, s.nav.cursor, s.nav.n
	if s.searchPg == nil && s.pg != nil {
		// Its own labelling state, over the index fetched at opening:
		// asking the trackers again here would block the screen.
		s.searchPg = newPager(s.pg.plan.Fork(), &flowfmt.Options{Location: s.c.loc}, s.c.enrich.Overwrite)
	}
	pg := s.searchPg
	return func() tea.Msg {
		defer stop()
		found, scanned, err := search(ctx, ff, pg, strings.ToLower(q), start, dir, total)
		return searchDoneMsg{gen: gen, seq: seq, query: q, found: found, scanned: scanned, err: err}
	}
}

// search scans the records from start+dir on (wrapping) for one whose
// line or username contains q (lower case).
func search(ctx context.Context, ff *flowFile, pg *pager, q string, start, dir, total int) (found, scanned int, err error) {
	if total == 0 {
		return -1, 0, nil
	}
	var (
		bi  blockInfo
		d   *decodedBlock
		buf []byte
	)
	for i := 1; i <= total; i++ {
		n := ((start+dir*i)%total + total) % total
		if d == nil || n < bi.first || n >= bi.first+bi.flows {
			if err := ctx.Err(); err != nil {
				return -1, scanned, err
			}
			var ok bool
			if bi, ok = ff.blockOf(n); !ok {
				return -1, scanned, nil
			}
			if d, err = ff.block(bi); err != nil {
				return -1, scanned, err
			}
		}
		r := pg.row(d, bi, n)
		scanned++
		buf = append(append(append(buf[:0], r.line...), ' '), r.uname...)
		if containsFold(buf, q) {
			return n, scanned, nil
		}
	}
	return -1, scanned, nil
}

// containsFold reports whether s contains q (lower case), ignoring the
// case of ASCII letters in s.
func containsFold(s []byte, q string) bool {
	for i := range s {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			s[i] = c + 'a' - 'A'
		}
	}
	return strings.Contains(string(s), q)
}

// ---- VIEW ----

func (s *previewScreen) view() string {
	st := s.c.st
	var b strings.Builder
	lines := s.headerLines()
	for _, l := range lines {
		b.WriteString(padLine(l, s.width))
		b.WriteByte('\n')
	}
	lineW, unameW := s.rowLayout()
	b.WriteString(st.Header.Render("   " + window(s.lineHeader, s.xoff, lineW) + " " + unameTitle))
	b.WriteByte('\n')
	from, to := s.nav.visible()
	line := make([]byte, 0, 2*s.width)
	for i := from; i < to; i++ {
		line = s.appendRow(line[:0], i, lineW, unameW)
		b.Write(line)
		b.WriteByte('\n')
	}
	for i := to - from; i < s.nav.height; i++ {
		if i == 0 && s.ff != nil && s.prog.done && s.nav.n == 0 {
			b.WriteString(st.dim.render("  the file holds no flow records"))
		}
		b.WriteByte('\n')
	}
	b.WriteString(s.footer())
	return b.String()
}

func (s *previewScreen) headerLines() []string {
	st := s.c.st
	l := make([]string, 4)
	switch {
	case s.path == "":
		l[0] = st.dim.render(" no file open: pick one on the Files screen (2) and press enter")
		return l
	case s.err != nil:
		l[0] = st.bad.render(" " + s.err.Error())
		return l
	case s.opening || s.ff == nil:
		l[0] = " " + s.path + " · opening… (reading the bindings for its time window)"
		return l
	}
	ff := s.ff
	l[0] = st.accent.render(" "+ff.path) + " · " + ff.hdr.Compression.String() + " · " + humanBytes(ff.size)
	if ff.hasSt && ff.stat.FirstSeen > 0 {
		first, last := ff.stat.First().In(s.c.loc), ff.stat.Last().In(s.c.loc)
		end := last.Format("15:04:05")
		if last.Format("20060102") != first.Format("20060102") {
			end = last.Format("2006-01-02 15:04:05")
		}
		l[0] += " · " + first.Format("2006-01-02 15:04:05") + " – " + end
	}
	l[1] = " " + strings.Join(s.c.policy(), " · ")
	p := s.prog
	switch {
	case p.err != nil && p.done:
		l[2] = st.bad.render(fmt.Sprintf(" reading the file stopped at record %d: %v", p.flows, p.err))
	case !p.done:
		pct := 0
		if p.blocksTotal > 0 {
			pct = 100 * p.blocksDone / p.blocksTotal
		}
		l[2] = fmt.Sprintf(" indexing %d%% · %s so far · match statistics when done", pct, count(p.flows, "record", "records"))
	case p.summary == nil:
		l[2] = " " + count(p.flows, "record", "records") + " · " + count(p.users, "already carries a username", "already carry a username")
	default:
		sum := p.summary
		l[2] = " " + st.ok.render(fmt.Sprintf("matched %d of %d (%.1f%%)", sum.Matched(), sum.Flows, 100*sum.MatchRate())) +
			fmt.Sprintf(": %d exact · %d listener · %d wildcard · ", sum.Exact, sum.Listener, sum.Wildcard) +
			st.unmatched.render(fmt.Sprintf("%d unmatched", sum.Unmatched)) +
			fmt.Sprintf(" · %d already named", p.users)
		if len(sum.TopUnmatched) > 0 {
			var parts []string
			for _, e := range sum.TopUnmatched {
				parts = append(parts, fmt.Sprintf("%s %s ×%d", e.Proto, endpointText(e), e.Flows))
			}
			l[3] = " top unmatched: " + strings.Join(parts, " · ")
		}
	}
	if s.planErr != nil {
		l[3] = st.bad.render(" bindings: " + s.planErr.Error())
	}
	return l
}

func endpointText(e enrich.Endpoint) string {
	if e.Port == 0 {
		return e.Addr.String()
	}
	return netip.AddrPortFrom(e.Addr, e.Port).String()
}

// rowLayout returns the width of the scrolled %line part and of the
// username column, which stays pinned at the right of the line part so
// that the labels are visible at any terminal width.
func (s *previewScreen) rowLayout() (lineW, unameW int) {
	unameW = len(unameTitle)
	from, to := s.nav.visible()
	for n := from; n < to; n++ {
		if i := n - s.winFrom; i >= 0 && i < len(s.win) {
			unameW = max(unameW, textWidth(s.win[i].uname))
		}
	}
	unameW = min(unameW, max(len(unameTitle), s.width/3))
	avail := s.width - 4 - unameW
	lineW = max(0, min(avail, len(s.lineHeader)-s.xoff))
	if lineW < len(s.lineHeader)-s.xoff {
		// Cut at the end of the last column that fits.
		best := 0
		for _, e := range s.colEnds {
			if e-s.xoff <= avail && e-s.xoff > best {
				best = e - s.xoff
			}
		}
		if best > 0 {
			lineW = best
		}
	}
	return lineW, unameW
}

// unameTitle is nfdump's title of the %uname column.
const unameTitle = "UserName"

func (s *previewScreen) appendRow(dst []byte, n int, lineW, unameW int) []byte {
	st := s.c.st
	cur := n == s.nav.cursor
	i := n - s.winFrom
	if i < 0 || i >= len(s.win) {
		if cur {
			dst = append(dst, st.cursor.pre...)
			dst = append(dst, '>')
			dst = appendSpaces(dst, s.width-1)
			return append(dst, st.cursor.post...)
		}
		return append(dst, st.dim.render("  …")...)
	}
	r := &s.win[i]
	var um paint
	switch r.mark {
	case markExact, markListener, markWildcard:
		um = st.matched
	case markKept:
		um = st.kept
	case markUnknown:
		um = st.unknown
	default:
		um = st.unmatched
	}
	row := paint{}
	if cur {
		row = st.cursor
	}
	dst = append(dst, row.pre...)
	if cur {
		dst = append(dst, '>')
	} else {
		dst = append(dst, ' ')
	}
	dst = append(dst, um.pre...)
	dst = append(dst, r.mark)
	dst = append(dst, um.post...)
	dst = append(dst, row.pre...)
	dst = append(dst, ' ')
	dst = append(dst, window(r.line, s.xoff, lineW)...)
	dst = append(dst, ' ')
	dst = append(dst, um.pre...)
	dst = appendCell(dst, r.uname, unameW, false)
	dst = append(dst, um.post...)
	dst = append(dst, row.pre...)
	if w := 3 + lineW + 1 + unameW; w < s.width {
		dst = appendSpaces(dst, s.width-w)
	}
	return append(dst, row.post...)
}

func (s *previewScreen) footer() string {
	st := s.c.st
	if s.searching {
		return padLine(s.input.View(), s.width)
	}
	pos := ""
	if s.nav.n > 0 {
		from, to := s.nav.visible()
		pos = fmt.Sprintf(" records %d–%d of %d", from+1, to, s.nav.n)
		if !s.prog.done {
			pos += "+"
		}
		pos += fmt.Sprintf(" · %d%%", 100*to/s.nav.n)
	}
	if s.rowsErr != nil {
		pos += " · " + st.bad.render(s.rowsErr.Error())
	}
	if s.searchMsg != "" {
		pos += " · " + s.searchMsg
	}
	pos += st.dim.render(" · E/L/W matched, = kept, ? unknown, - none · / search · c commit · esc back")
	return padLine(pos, s.width)
}
