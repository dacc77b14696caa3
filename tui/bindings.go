package tui

// The Bindings screen: a live table of the sockets and their owners from
// every BindingsSource, filtered as the user types and sorted by any
// column. Only the rows on screen are rendered; the filter and the sort
// run over prepared rows (cells formatted once per change of the data),
// so a keystroke costs a scan of the rows, not a rebuild.

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/netdumper/netdumper/tracker"
)

// ---- MSG ----

// sourceMsg says source i may have changed (its Wait returned).
type sourceMsg struct {
	i   int
	err error
}

// closedMsg carries the recently closed bindings of source i.
type closedMsg struct {
	i   int
	gen int
	bs  []tracker.Binding
	err error
}

// refreshTickMsg runs a refresh that was held back by the throttle.
type refreshTickMsg struct{}

// closedTickMsg refetches the closed bindings while they are shown.
type closedTickMsg struct{ gen int }

// ---- MODEL ----

// Columns of the bindings table.
const (
	colHost = iota
	colProto
	colLocal
	colRemote
	colState
	colPID
	colProc
	colUser
	colSince
	colUntil
	numBCols
)

type bcolumn struct {
	title    string
	right    bool
	min, max int
}

var bcolumns = [numBCols]bcolumn{
	colHost:   {"HOST", false, 4, 24},
	colProto:  {"PROTO", false, 5, 5},
	colLocal:  {"LOCAL", false, 9, 47},
	colRemote: {"REMOTE", false, 6, 47},
	colState:  {"STATE", false, 6, 11},
	colPID:    {"PID", true, 3, 8},
	colProc:   {"PROCESS", false, 7, 32},
	colUser:   {"USER", false, 4, 16},
	colSince:  {"SINCE", false, 8, 19},
	colUntil:  {"UNTIL", false, 8, 19},
}

// bindingKey identifies a row across updates, so the cursor stays on the
// same socket while the table changes under it.
type bindingKey struct {
	host          string
	proto         tracker.Proto
	local, remote netip.AddrPort
	inode, netns  uint64
	from          int64 // closed rows: one per interval
}

type bindingRow struct {
	b       tracker.Binding
	key     bindingKey
	closed  bool
	cells   [numBCols]string
	lowAll  string // every cell, lower case, for plain-text filtering
	lowProc string
	lowUser string
	lowHost string
}

type bindingsScreen struct {
	c       *common
	sources []BindingsSource
	views   []*tracker.View
	health  []Health
	closed  [][]tracker.Binding
	closedE []error

	rows  []*bindingRow // every row, sorted
	byKey map[bindingKey]*bindingRow
	vis   []*bindingRow // rows passing the filter, in sort order
	nav   scroller

	input     textinput.Model
	filtering bool // the filter input has the focus
	filter    string
	terms     []filterTerm

	sortCol    int
	sortDesc   bool
	showClosed bool
	closedGen  int

	hosts   int // distinct hosts in the rows: the host column shows when > 1
	natural [numBCols]int
	widths  []int
	cols    []int // the columns shown, in order

	lastRefresh    time.Time
	refreshPending bool
	dirty          bool

	width, height int
}

func newBindingsScreen(c *common, sources []BindingsSource) *bindingsScreen {
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "filter: port:22 proc:nginx user: host: proto:udp state:listen, or any text"
	in.CharLimit = 256
	s := &bindingsScreen{
		c: c, sources: sources,
		views: make([]*tracker.View, len(sources)), health: make([]Health, len(sources)),
		closed: make([][]tracker.Binding, len(sources)), closedE: make([]error, len(sources)),
		byKey: map[bindingKey]*bindingRow{}, input: in, sortCol: colLocal,
	}
	for i := range s.health {
		s.health[i] = Health{HealthConnecting, "waiting"}
	}
	s.setColumns()
	return s
}

// ---- INIT ----

func (s *bindingsScreen) init() tea.Cmd {
	cmds := make([]tea.Cmd, 0, len(s.sources))
	for i := range s.sources {
		cmds = append(cmds, s.wait(i))
	}
	s.refresh()
	return tea.Batch(cmds...)
}

// ---- UPDATE ----

func (s *bindingsScreen) setSize(w, h int) {
	s.width, s.height = w, h
	s.input.Width = max(10, w-30)
	s.nav.setHeight(s.rowsHeight())
	s.layout()
}

// rowsHeight is the number of table rows: the body minus the summary,
// header and filter lines.
func (s *bindingsScreen) rowsHeight() int { return max(1, s.height-3) }

func (s *bindingsScreen) focused() bool { return s.filtering }

func (s *bindingsScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case sourceMsg:
		if s.c.ctx.Err() != nil {
			return nil
		}
		if msg.err != nil {
			s.c.log.Debug("bindings source wait", "source", s.sources[msg.i].Name(), "err", msg.err)
		}
		return tea.Batch(s.wait(msg.i), s.maybeRefresh())
	case refreshTickMsg:
		s.refreshPending = false
		if s.dirty {
			s.refresh()
		}
		return nil
	case closedMsg:
		if msg.gen != s.closedGen || !s.showClosed {
			return nil
		}
		s.closed[msg.i], s.closedE[msg.i] = msg.bs, msg.err
		if msg.err != nil {
			s.c.log.Warn("closed bindings", "source", s.sources[msg.i].Name(), "err", msg.err)
		}
		s.refresh()
		return nil
	case closedTickMsg:
		if msg.gen == s.closedGen && s.showClosed {
			return s.fetchClosed()
		}
		return nil
	case tea.KeyMsg:
		return s.key(msg)
	}
	return nil
}

func (s *bindingsScreen) key(msg tea.KeyMsg) tea.Cmd {
	k := s.c.keys
	if s.filtering {
		switch {
		case key.Matches(msg, k.Accept):
			s.filtering = false
			s.input.Blur()
			// Drop the separator / added, or one typed last.
			if v := strings.TrimRight(s.input.Value(), " "); v != s.input.Value() {
				s.input.SetValue(v)
				s.setFilter(v)
			}
			return nil
		case key.Matches(msg, k.Cancel):
			s.filtering = false
			s.input.Blur()
			s.input.SetValue("")
			s.setFilter("")
			return nil
		case msg.Type == tea.KeyUp, msg.Type == tea.KeyDown, msg.Type == tea.KeyPgUp, msg.Type == tea.KeyPgDown:
			// Arrows still move the cursor while typing.
		default:
			var cmd tea.Cmd
			s.input, cmd = s.input.Update(msg)
			if v := s.input.Value(); v != s.filter {
				s.setFilter(v)
			}
			return cmd
		}
	}
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
	case key.Matches(msg, k.Filter):
		// Edit the filter shown: the cursor at its end, after a space,
		// so that what is typed is one more term (and backspace takes
		// the space back to change the last one).
		if v := s.input.Value(); v != "" && !strings.HasSuffix(v, " ") {
			s.input.SetValue(v + " ")
		}
		s.input.CursorEnd()
		s.filtering = true
		return s.input.Focus()
	case key.Matches(msg, k.Cancel):
		if s.input.Value() != "" {
			s.input.SetValue("")
			s.setFilter("")
		}
	case key.Matches(msg, k.Sort):
		s.sortCol = s.nextSortCol()
		s.resort()
	case key.Matches(msg, k.Reverse):
		s.sortDesc = !s.sortDesc
		s.resort()
	case key.Matches(msg, k.History):
		s.showClosed = !s.showClosed
		s.closedGen++
		for i := range s.closed {
			s.closed[i], s.closedE[i] = nil, nil
		}
		s.setColumns()
		if !s.showClosed && s.sortCol == colUntil {
			s.sortCol = colLocal
		}
		s.rebuild(true)
		if s.showClosed {
			return s.fetchClosed()
		}
	}
	return nil
}

// setFilter applies a new filter text.
func (s *bindingsScreen) setFilter(text string) {
	s.filter = text
	s.terms = parseFilter(text)
	s.applyFilter()
}

func (s *bindingsScreen) nextSortCol() int {
	n := colSince + 1
	if s.showClosed {
		n = numBCols
	}
	return (s.sortCol + 1) % n
}

func (s *bindingsScreen) click(y int) {
	// y is relative to the body: summary line, header, then rows.
	if r := y - 2; r >= 0 && r < s.nav.height {
		s.nav.moveTo(s.nav.offset + r)
	}
}

func (s *bindingsScreen) wheel(d int) { s.nav.scroll(d) }

// wait waits for source i to change.
func (s *bindingsScreen) wait(i int) tea.Cmd {
	ctx, src := s.c.ctx, s.sources[i]
	return func() tea.Msg {
		return sourceMsg{i: i, err: src.Wait(ctx)}
	}
}

// maybeRefresh refreshes now, or later when the last refresh was too
// recent (a busy host changes its sockets many times a second; the table
// follows at most MinRefresh apart).
func (s *bindingsScreen) maybeRefresh() tea.Cmd {
	s.dirty = true
	every := s.c.minRefresh
	since := time.Since(s.lastRefresh)
	if every <= 0 || since >= every {
		s.refresh()
		return nil
	}
	if s.refreshPending {
		return nil
	}
	s.refreshPending = true
	return tea.Tick(every-since, func(time.Time) tea.Msg { return refreshTickMsg{} })
}

func (s *bindingsScreen) fetchClosed() tea.Cmd {
	gen := s.closedGen
	now := s.c.now()
	from := now.Add(-s.c.closedWindow)
	cmds := []tea.Cmd{tea.Tick(10*time.Second, func(time.Time) tea.Msg { return closedTickMsg{gen} })}
	for i, src := range s.sources {
		ctx := s.c.ctx
		cmds = append(cmds, func() tea.Msg {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			bs, err := src.Closed(ctx, from, now)
			return closedMsg{i: i, gen: gen, bs: bs, err: err}
		})
	}
	return tea.Batch(cmds...)
}

// sameView reports whether two views hold the same bindings (sources
// reuse the slice while nothing changed).
func sameView(a, b *tracker.View) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Host == b.Host && len(a.Bindings) == len(b.Bindings) &&
		unsafe.SliceData(a.Bindings) == unsafe.SliceData(b.Bindings)
}

// refresh reads every source and rebuilds the rows that changed.
func (s *bindingsScreen) refresh() { s.rebuild(false) }

// rebuild reads every source; it rebuilds the rows when a source changed
// or when forced.
func (s *bindingsScreen) rebuild(force bool) {
	s.lastRefresh = time.Now()
	s.dirty = false
	changed := s.rows == nil || force
	for i, src := range s.sources {
		s.health[i] = src.Health()
		v := src.Current()
		if !sameView(v, s.views[i]) {
			s.views[i] = v
			changed = true
		}
	}
	if !changed && !s.showClosed {
		return
	}
	now := s.c.now()
	n := 0
	for i := range s.views {
		if s.views[i] != nil {
			n += len(s.views[i].Bindings)
		}
		n += len(s.closed[i])
	}
	old := s.byKey
	s.byKey = make(map[bindingKey]*bindingRow, n)
	rows := make([]*bindingRow, 0, n)
	add := func(b *tracker.Binding, host string, closed bool) {
		if b.Host == "" {
			b.Host = host
		}
		k := keyOf(b, closed)
		if _, dup := s.byKey[k]; dup {
			return
		}
		r := old[k]
		if r == nil || !sameBinding(&r.b, b) {
			r = s.newRow(b, closed, now)
		}
		s.byKey[k] = r
		rows = append(rows, r)
	}
	for i, v := range s.views {
		if v != nil {
			for j := range v.Bindings {
				b := v.Bindings[j]
				add(&b, v.Host, false)
			}
		}
		for j := range s.closed[i] {
			b := s.closed[i][j]
			add(&b, "", true)
		}
	}
	s.rows = rows
	hosts := map[string]bool{}
	for _, r := range rows {
		hosts[r.key.host] = true
	}
	if len(hosts) != s.hosts {
		s.hosts = len(hosts)
		s.setColumns()
	}
	s.measure()
	s.resort()
}

func keyOf(b *tracker.Binding, closed bool) bindingKey {
	k := bindingKey{host: b.Host, proto: b.Proto, local: b.Local, remote: b.Remote, inode: b.Inode, netns: b.NetNS}
	if closed {
		k.from = b.From.UnixNano()
	}
	return k
}

func sameBinding(a, b *tracker.Binding) bool {
	return a.State == b.State && a.From.Equal(b.From) && a.Until.Equal(b.Until) &&
		(a.Owner == b.Owner || (a.Owner != nil && b.Owner != nil && *a.Owner == *b.Owner))
}

func (s *bindingsScreen) newRow(b *tracker.Binding, closed bool, now time.Time) *bindingRow {
	r := &bindingRow{b: *b, key: keyOf(b, closed), closed: closed}
	c := &r.cells
	c[colHost] = b.Host
	c[colProto] = b.Proto.String()
	c[colLocal] = b.Local.String()
	if b.Connected() {
		c[colRemote] = b.Remote.String()
	} else {
		c[colRemote] = "*"
	}
	c[colState] = b.State.String()
	if closed {
		c[colState] = "closed"
	}
	if o := b.Owner; o != nil {
		c[colPID] = strconv.Itoa(int(o.PID))
		c[colProc] = o.Name
		c[colUser] = o.User
		if o.User == "" {
			c[colUser] = strconv.FormatUint(uint64(o.UID), 10)
		}
		if b.Inherited {
			c[colProc] += " (listener)"
		}
	} else {
		c[colPID], c[colProc], c[colUser] = "-", "?", "-"
	}
	c[colSince] = s.c.clock(b.From, now)
	c[colUntil] = s.c.clock(b.Until, now)
	r.lowProc = strings.ToLower(c[colProc])
	r.lowUser = strings.ToLower(c[colUser])
	r.lowHost = strings.ToLower(c[colHost])
	r.lowAll = strings.ToLower(strings.Join(c[:], " "))
	return r
}

// measure computes the natural width of each column over every row.
func (s *bindingsScreen) measure() {
	for c := range s.natural {
		s.natural[c] = len(bcolumns[c].title) + 2 // room for the sort arrow
	}
	for _, r := range s.rows {
		for c := range r.cells {
			if w := textWidth(r.cells[c]); w > s.natural[c] {
				s.natural[c] = w
			}
		}
	}
	for c := range s.natural {
		s.natural[c] = min(s.natural[c], bcolumns[c].max)
	}
	s.layout()
}

func (s *bindingsScreen) setColumns() {
	s.cols = s.cols[:0]
	for c := 0; c < numBCols; c++ {
		if c == colUntil && !s.showClosed {
			continue
		}
		if c == colHost && s.hosts <= 1 {
			continue
		}
		s.cols = append(s.cols, c)
	}
	s.layout()
}

// layout fits the shown columns into the screen width.
func (s *bindingsScreen) layout() {
	nat := make([]int, len(s.cols))
	mins := make([]int, len(s.cols))
	pos := map[int]int{}
	for i, c := range s.cols {
		nat[i], mins[i] = s.natural[c], bcolumns[c].min
		pos[c] = i
	}
	var order []int
	for _, c := range []int{colRemote, colProc, colLocal, colHost, colUser, colSince, colUntil, colState} {
		if i, ok := pos[c]; ok {
			order = append(order, i)
		}
	}
	s.widths = layoutColumns(nat, mins, order, 1, s.width-2)
}

// resort sorts the rows and filters them again.
func (s *bindingsScreen) resort() {
	col, desc := s.sortCol, s.sortDesc
	slices.SortStableFunc(s.rows, func(a, b *bindingRow) int {
		c := compareBy(col, a, b)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return compareRowKeys(a, b)
	})
	s.applyFilter()
}

func compareAddrPort(a, b netip.AddrPort) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Port(), b.Port()))
}

func compareBy(col int, a, b *bindingRow) int {
	switch col {
	case colHost:
		return strings.Compare(a.lowHost, b.lowHost)
	case colProto:
		return cmp.Compare(a.b.Proto, b.b.Proto)
	case colLocal:
		return compareAddrPort(a.b.Local, b.b.Local)
	case colRemote:
		return compareAddrPort(a.b.Remote, b.b.Remote)
	case colState:
		return strings.Compare(a.cells[colState], b.cells[colState])
	case colPID:
		return cmp.Compare(pidOf(a), pidOf(b))
	case colProc:
		return strings.Compare(a.lowProc, b.lowProc)
	case colUser:
		return strings.Compare(a.lowUser, b.lowUser)
	case colSince:
		return a.b.From.Compare(b.b.From)
	case colUntil:
		return a.b.Until.Compare(b.b.Until)
	}
	return 0
}

func pidOf(r *bindingRow) int32 {
	if r.b.Owner == nil {
		return -1
	}
	return r.b.Owner.PID
}

func compareRowKeys(a, b *bindingRow) int {
	return cmp.Or(
		cmp.Compare(a.b.Proto, b.b.Proto),
		compareAddrPort(a.b.Local, b.b.Local),
		compareAddrPort(a.b.Remote, b.b.Remote),
		strings.Compare(a.key.host, b.key.host),
		cmp.Compare(a.key.inode, b.key.inode),
		cmp.Compare(a.key.netns, b.key.netns),
		cmp.Compare(a.key.from, b.key.from),
	)
}

// applyFilter recomputes the visible rows and puts the cursor back on the
// row it was on, at the same height on the screen.
func (s *bindingsScreen) applyFilter() {
	var sel *bindingRow
	if s.nav.cursor >= 0 && s.nav.cursor < len(s.vis) {
		sel = s.vis[s.nav.cursor]
	}
	rel := s.nav.cursor - s.nav.offset
	vis := s.vis[:0]
	if len(s.terms) == 0 {
		vis = append(vis, s.rows...)
	} else {
		for _, r := range s.rows {
			if matchAll(s.terms, r) {
				vis = append(vis, r)
			}
		}
	}
	if old := s.vis; len(old) > len(vis) {
		clear(old[len(vis):]) // drop stale row pointers from the reused array
	}
	s.vis = vis
	s.nav.n = len(vis)
	at := s.nav.cursor
	if sel != nil {
		if r := s.byKey[sel.key]; r != nil {
			sel = r
		}
		if i := slices.Index(vis, sel); i >= 0 {
			at = i
		}
	}
	s.nav.keepAt(at, rel)
}

// selected returns the row under the cursor, if any.
func (s *bindingsScreen) selected() *bindingRow {
	if s.nav.cursor < 0 || s.nav.cursor >= len(s.vis) {
		return nil
	}
	return s.vis[s.nav.cursor]
}

// ---- VIEW ----

func (s *bindingsScreen) view() string {
	var b strings.Builder
	b.Grow((s.width + 16) * (s.height + 1))
	st := s.c.st

	// Summary line.
	total := len(s.rows)
	sum := " " + count(total, "binding", "bindings")
	if len(s.terms) > 0 {
		sum = fmt.Sprintf(" %d of %s", len(s.vis), count(total, "binding", "bindings"))
	}
	dir := "▲"
	if s.sortDesc {
		dir = "▼"
	}
	sum += fmt.Sprintf(" · sort %s %s", strings.ToLower(bcolumns[s.sortCol].title), dir)
	if s.showClosed {
		sum += fmt.Sprintf(" · closed in the last %s shown", shortDuration(s.c.closedWindow))
	}
	b.WriteString(st.accent.render(padLine(sum, s.width)))
	b.WriteByte('\n')

	// Header.
	line := make([]byte, 0, s.width*2)
	line = append(line, "  "...)
	for i, c := range s.cols {
		if i > 0 {
			line = append(line, ' ')
		}
		t := bcolumns[c].title
		if c == s.sortCol {
			t += " " + dir
		}
		line = appendCell(line, t, s.widths[i], bcolumns[c].right)
	}
	b.WriteString(st.Header.Render(cut(string(line), s.width)))
	b.WriteByte('\n')

	// Rows.
	from, to := s.nav.visible()
	for i := from; i < to; i++ {
		line = s.appendRow(line[:0], s.vis[i], i == s.nav.cursor)
		b.Write(line)
		b.WriteByte('\n')
	}
	for i := to - from; i < s.nav.height; i++ {
		if i == 0 && len(s.vis) == 0 {
			b.WriteString(st.dim.render(s.emptyText()))
		}
		b.WriteByte('\n')
	}

	// Filter line.
	if s.filtering || s.input.Value() != "" {
		b.WriteString(padLine(s.input.View(), s.width))
	} else {
		b.WriteString(st.dim.render(padLine(" / filter · s sort · S reverse · h recently closed", s.width)))
	}
	return b.String()
}

func (s *bindingsScreen) emptyText() string {
	switch {
	case len(s.sources) == 0:
		return "  no bindings source (start netdumper serve, or give --tracker URL)"
	case len(s.rows) == 0:
		return "  no bindings yet"
	}
	return "  no binding matches the filter"
}

func (s *bindingsScreen) appendRow(dst []byte, r *bindingRow, cur bool) []byte {
	st := s.c.st
	row := paint{}
	switch {
	case cur:
		row = st.cursor
	case r.closed:
		row = st.dim
	}
	dst = append(dst, row.pre...)
	if cur {
		dst = append(dst, "> "...)
	} else {
		dst = append(dst, "  "...)
	}
	n := 2
	for i, c := range s.cols {
		if i > 0 {
			if n+1 >= s.width {
				break
			}
			dst = append(dst, ' ')
			n++
		}
		w := min(s.widths[i], s.width-n)
		if w <= 0 {
			break
		}
		cell := r.cells[c]
		if c == colLocal || c == colRemote {
			cell = cutLeft(cell, w) // keep the port
		}
		dst = appendCell(dst, cell, w, bcolumns[c].right)
		n += w
	}
	if n < s.width {
		dst = appendSpaces(dst, s.width-n)
	}
	return append(dst, row.post...)
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
