package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/flowfmt"
	"github.com/netdumper/netdumper/tracker"
)

// Options configure the TUI.
type Options struct {
	// Dir is the flow directory the Files screen starts in ("." when
	// empty).
	Dir string
	// Sources feed the Bindings screen (live bindings); may be empty.
	Sources []BindingsSource
	// Enrich configures the preview and the commit: the bindings sources
	// (history for each file's window), the label and unknown templates,
	// the overwrite policy. Its Logger is replaced by Logger. With no
	// Sources every flow shows as unmatched.
	Enrich enrich.Options
	// Renderer decides colours (profile, light or dark background); nil
	// means lipgloss's default renderer (stdout, NO_COLOR respected).
	Renderer *lipgloss.Renderer
	// Logger receives the TUI's logs; it must not write to the terminal.
	// nil discards them.
	Logger *slog.Logger
	// KeyMap; nil means DefaultKeyMap().
	KeyMap *KeyMap
	// Now and Location give the clock and the time zone of the times
	// shown (time.Now and time.Local when nil); tests pin both.
	Now      func() time.Time
	Location *time.Location
	// MinRefresh is the least time between two rebuilds of the bindings
	// table on live updates (0: 200 ms; negative: none).
	MinRefresh time.Duration
	// ClosedWindow is how far back "recently closed" bindings go (0: 15
	// minutes).
	ClosedWindow time.Duration
	// Notes are shown in the status line at start (e.g. which defaults
	// were picked).
	Notes []string
	// Start is the screen shown first: "bindings", "files" (default) or
	// "preview" (with PreviewFile).
	Start string
	// PreviewFile, when set, is opened in the Preview screen at start.
	PreviewFile string
}

type screenID uint8

const (
	screenBindings screenID = iota
	screenFiles
	screenPreview
	numScreens
)

var screenNames = [numScreens]string{"Bindings", "Files", "Preview"}

// switchScreenMsg asks the root to show another screen.
type switchScreenMsg struct{ to screenID }

// healthTickMsg refreshes the status line once a second.
type healthTickMsg struct{}

// common is what every screen shares.
type common struct {
	ctx          context.Context
	st           *Styles
	keys         *KeyMap
	now          func() time.Time
	loc          *time.Location
	log          *slog.Logger
	minRefresh   time.Duration
	closedWindow time.Duration
	enrich       enrich.Options
	cache        *fileCache
	writers      sync.WaitGroup // commits in progress
}

// clock formats t for a table: the time of day when t is within the last
// day, else the date too; "-" for the zero time.
func (c *common) clock(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	t = t.In(c.loc)
	if d := now.Sub(t); d < 20*time.Hour && d > -time.Hour {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04")
}

// noBindings is the enrichment source used when none is configured.
type noBindings struct{}

func (noBindings) Name() string { return "no bindings" }
func (noBindings) Add(context.Context, *tracker.IndexBuilder, time.Time, time.Time) error {
	return nil
}

// newJob returns an enrichment job with the configured options.
func (c *common) newJob() (*enrich.Job, error) {
	opts := c.enrich
	if len(opts.Sources) == 0 {
		opts.Sources = []enrich.Source{noBindings{}}
	}
	opts.Logger = c.log
	return enrich.NewJob(opts)
}

// newPager prepares the labelling of path for the preview. When the
// bindings cannot be read the pager labels nothing and the error says
// why.
func (c *common) newPager(ctx context.Context, path string) (*pager, error) {
	opts := &flowfmt.Options{Location: c.loc}
	job, err := c.newJob()
	if err == nil {
		var plan *enrich.Plan
		if plan, err = job.Prepare(ctx, path); err == nil {
			return newPager(plan, opts, c.enrich.Overwrite), nil
		}
	}
	c.log.Warn("preview bindings", "file", path, "err", err)
	empty, jerr := enrich.NewJob(enrich.Options{Sources: []enrich.Source{noBindings{}}, Label: c.enrich.Label,
		Unknown: c.enrich.Unknown, Overwrite: c.enrich.Overwrite})
	if jerr != nil {
		return nil, errors.Join(err, jerr)
	}
	plan, perr := empty.Prepare(ctx, path)
	if perr != nil {
		return nil, errors.Join(err, perr)
	}
	return newPager(plan, opts, c.enrich.Overwrite), err
}

// policy describes what a commit writes, one part per line.
func (c *common) policy() []string {
	label := "{process}"
	if c.enrich.Label != nil {
		label = c.enrich.Label.String()
	}
	unknown := "left without a username"
	if c.enrich.Unknown != nil {
		unknown = fmt.Sprintf("%q", c.enrich.Unknown.String())
	}
	over := "kept"
	if c.enrich.Overwrite {
		over = "overwritten"
	}
	var names []string
	for _, s := range c.enrich.Sources {
		names = append(names, s.Name())
	}
	src := "none"
	if len(names) > 0 {
		src = strings.Join(names, ", ")
	}
	return []string{"label " + label, "unmatched: " + unknown, "existing usernames " + over, "bindings: " + src}
}

// notePreviewStats keeps what the preview's pass over a file learnt.
func (c *common) notePreviewStats(path string, ff *flowFile, p indexProgress) {
	if p.err != nil {
		return
	}
	e := c.cache.get(path, ff.size, ff.mtime)
	e.users, e.usersKnown = p.users, true
	if e.records < 0 {
		e.records = int64(p.flows)
	}
	if p.summary != nil {
		e.summary = p.summary
	}
}

// Model is the root model of the TUI: the tab bar, the three screens,
// the commit dialog, the help overlay and the status line.
type Model struct {
	c       *common
	screen  screenID
	binds   *bindingsScreen
	files   *filesScreen
	preview *previewScreen
	commit  *commitDialog
	commits int
	help    bool

	notes    []string
	flash    string
	flashBad bool
	quitting bool

	width, height int
}

var _ tea.Model = (*Model)(nil)

// New returns the TUI model. Background work (loads, the live source
// waits, commits) stops when ctx ends: cancel it once the program has
// returned.
func New(ctx context.Context, opts Options) *Model {
	r := opts.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &common{
		ctx: ctx, st: NewStyles(r), keys: opts.KeyMap, now: opts.Now, loc: opts.Location, log: log,
		minRefresh: opts.MinRefresh, closedWindow: opts.ClosedWindow, enrich: opts.Enrich, cache: newFileCache(),
	}
	if c.keys == nil {
		c.keys = DefaultKeyMap()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.loc == nil {
		c.loc = time.Local
	}
	if c.minRefresh == 0 {
		c.minRefresh = 200 * time.Millisecond
	}
	if c.closedWindow <= 0 {
		c.closedWindow = 15 * time.Minute
	}
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	m := &Model{
		c: c, screen: screenFiles,
		binds:   newBindingsScreen(c, opts.Sources),
		files:   newFilesScreen(c, dir),
		preview: newPreviewScreen(c),
		notes:   opts.Notes,
		width:   80, height: 24,
	}
	switch opts.Start {
	case "bindings":
		m.screen = screenBindings
	case "preview":
		m.screen = screenPreview
	}
	m.preview.path = opts.PreviewFile
	m.resize(m.width, m.height)
	return m
}

// Wait blocks until no commit is writing a file any more (or ctx ends).
// Call it after the program has returned and New's context is cancelled,
// before the process exits, so that a cancelled rewrite has removed its
// temporary file.
func (m *Model) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		m.c.writers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Init starts the live sources, the directory listing and the health
// ticks.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.binds.init(), m.files.init(), healthTick()}
	if p := m.preview.path; p != "" {
		cmds = append(cmds, m.preview.open(p))
	}
	return tea.Batch(cmds...)
}

func healthTick() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return healthTickMsg{} })
}

func (m *Model) resize(w, h int) {
	m.width, m.height = max(w, 20), max(h, 6)
	bw, bh := m.width, m.height-2 // the tab bar and the status line
	m.binds.setSize(bw, bh)
	m.files.setSize(bw, bh)
	m.preview.setSize(bw, bh)
	if m.commit != nil {
		m.commit.setSize(bw, bh)
	}
}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, m.afterMove()
	case tea.KeyMsg:
		return m, m.key(msg)
	case tea.MouseMsg:
		return m, m.mouse(msg)
	case healthTickMsg:
		if m.screen == screenBindings || len(m.binds.sources) > 0 {
			for i, src := range m.binds.sources {
				m.binds.health[i] = src.Health()
			}
		}
		return m, healthTick()
	case switchScreenMsg:
		m.screen = msg.to
		return m, m.afterMove()
	case openPreviewMsg:
		m.screen = screenPreview
		return m, m.preview.open(msg.path)
	case openCommitMsg:
		if m.commit != nil {
			return m, nil
		}
		m.commits++
		m.commit = newCommitDialog(m.c, m.commits, m.files.dir, msg.paths)
		m.commit.setSize(m.width, m.height-2)
		return m, m.commit.init()
	case commitClosedMsg:
		m.commit = nil
		return m, m.afterCommit(msg.written, msg.unchanged)
	case commitDoneMsg, commitFileMsg, commitProgressMsg, rateMsg:
		if m.commit == nil {
			return m, nil
		}
		cmd := m.commit.update(msg)
		if _, done := msg.(commitDoneMsg); done && m.quitting {
			return m, tea.Quit
		}
		return m, cmd
	case sourceMsg, refreshTickMsg, closedMsg, closedTickMsg:
		return m, m.binds.update(msg)
	case listMsg, metaMsg, usersMsg:
		return m, m.files.update(msg)
	case previewOpenedMsg, indexMsg, rowsMsg, searchDoneMsg:
		return m, m.preview.update(msg)
	}
	// Everything else (cursor blinks of the text inputs) goes to the
	// screen shown.
	switch m.screen {
	case screenBindings:
		if m.binds.filtering {
			var cmd tea.Cmd
			m.binds.input, cmd = m.binds.input.Update(msg)
			return m, cmd
		}
	case screenPreview:
		if m.preview.searching {
			var cmd tea.Cmd
			m.preview.input, cmd = m.preview.input.Update(msg)
			return m, cmd
		}
	}
	return m, nil
}

// afterMove schedules what the files screen needs after it was shown or
// resized.
func (m *Model) afterMove() tea.Cmd {
	switch m.screen {
	case screenFiles:
		return m.files.schedule()
	case screenPreview:
		return m.preview.ensureRows()
	}
	return nil
}

// afterCommit reloads what the rewritten files changed; the files found
// already labelled are only unmarked.
func (m *Model) afterCommit(written, unchanged []string) tea.Cmd {
	for _, p := range unchanged {
		delete(m.files.marked, p)
	}
	if len(written) == 0 {
		return nil
	}
	var cmds []tea.Cmd
	for _, p := range written {
		m.c.cache.forget(p)
		delete(m.files.marked, p)
		if p == m.preview.path {
			cmds = append(cmds, m.preview.open(p))
		}
	}
	m.setFlash("labels written to "+count(len(written), "file", "files"), false)
	cmds = append(cmds, m.files.list())
	return tea.Batch(cmds...)
}

func (m *Model) setFlash(s string, bad bool) { m.flash, m.flashBad = s, bad }

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.c.keys
	if msg.Type == tea.KeyCtrlC {
		return m.quit()
	}
	if m.help {
		m.help = false
		return nil
	}
	if m.commit != nil {
		return m.commit.update(msg)
	}
	focused := false
	switch m.screen {
	case screenBindings:
		focused = m.binds.focused()
	case screenPreview:
		focused = m.preview.focused()
	}
	if !focused {
		switch {
		case key.Matches(msg, k.Quit):
			return m.quit()
		case key.Matches(msg, k.Help):
			m.help = true
			return nil
		case key.Matches(msg, k.NextTab):
			m.screen = (m.screen + 1) % numScreens
			return m.afterMove()
		case key.Matches(msg, k.PrevTab):
			m.screen = (m.screen + numScreens - 1) % numScreens
			return m.afterMove()
		case key.Matches(msg, k.TabBindings):
			m.screen = screenBindings
			return nil
		case key.Matches(msg, k.TabFiles):
			m.screen = screenFiles
			return m.afterMove()
		case key.Matches(msg, k.TabPreview):
			m.screen = screenPreview
			return m.afterMove()
		}
	}
	switch m.screen {
	case screenBindings:
		return m.binds.update(msg)
	case screenFiles:
		return m.files.update(msg)
	default:
		return m.preview.update(msg)
	}
}

// quit ends the program; a running commit is cancelled first and the
// program ends when it has cleaned up (a second ctrl+c does not wait).
func (m *Model) quit() tea.Cmd {
	if m.commit != nil && m.commit.running() && !m.quitting {
		m.quitting = true
		m.commit.cancel()
		m.setFlash("cancelling the commit before quitting…", true)
		return nil
	}
	m.preview.close()
	return tea.Quit
}

func (m *Model) mouse(msg tea.MouseMsg) tea.Cmd {
	if m.help || m.commit != nil {
		return nil
	}
	ev := tea.MouseEvent(msg)
	wheel := 0
	switch ev.Button {
	case tea.MouseButtonWheelUp:
		wheel = -3
	case tea.MouseButtonWheelDown:
		wheel = 3
	}
	if wheel != 0 {
		switch m.screen {
		case screenBindings:
			m.binds.wheel(wheel)
		case screenFiles:
			return m.files.wheel(wheel)
		default:
			return m.preview.wheel(wheel)
		}
		return nil
	}
	if ev.Action != tea.MouseActionPress || ev.Button != tea.MouseButtonLeft {
		return nil
	}
	if ev.Y == 0 {
		if s, ok := m.tabAt(ev.X); ok {
			m.screen = s
			return m.afterMove()
		}
		return nil
	}
	y := ev.Y - 1
	switch m.screen {
	case screenBindings:
		m.binds.click(y)
	case screenFiles:
		return m.files.click(y)
	default:
		m.preview.click(y)
		return m.preview.ensureRows()
	}
	return nil
}

// tabs returns the labels of the tab bar.
func tabLabel(s screenID) string { return fmt.Sprintf("%d %s", s+1, screenNames[s]) }

// tabAt returns the tab under column x of the tab bar.
func (m *Model) tabAt(x int) (screenID, bool) {
	pos := lipgloss.Width(m.c.st.Title.Render(" netdumper ")) + 1
	for s := screenID(0); s < numScreens; s++ {
		w := lipgloss.Width(m.c.st.TabInactive.Render(tabLabel(s)))
		if x >= pos && x < pos+w {
			return s, true
		}
		pos += w + 1
	}
	return 0, false
}

// View renders the screen.
func (m *Model) View() string {
	var b strings.Builder
	b.Grow((m.width + 32) * m.height)
	b.WriteString(m.tabBar())
	b.WriteByte('\n')
	bodyH := m.height - 2
	var body string
	switch {
	case m.help:
		body = m.helpView(bodyH)
	case m.commit != nil:
		body = m.commit.view()
	default:
		switch m.screen {
		case screenBindings:
			body = m.binds.view()
		case screenFiles:
			body = m.files.view()
		default:
			body = m.preview.view()
		}
	}
	b.WriteString(fitLines(body, m.width, bodyH))
	b.WriteByte('\n')
	b.WriteString(m.statusLine())
	return b.String()
}

// fitLines returns exactly n lines of s, none wider than w, so that the
// terminal never wraps a line.
func fitLines(s string, w, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	for len(lines) < n {
		lines = append(lines, "")
	}
	for i, l := range lines {
		if len(l) > w && ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "…")
		}
	}
	return strings.Join(lines, "\n")
}

func (m *Model) tabBar() string {
	st := m.c.st
	parts := []string{st.Title.Render(" netdumper ")}
	for s := screenID(0); s < numScreens; s++ {
		if s == m.screen {
			parts = append(parts, st.TabActive.Render(tabLabel(s)))
		} else {
			parts = append(parts, st.TabInactive.Render(tabLabel(s)))
		}
	}
	bar := strings.Join(parts, " ")
	right := "? help "
	if gap := m.width - lipgloss.Width(bar) - lipgloss.Width(right); gap > 0 {
		bar += strings.Repeat(" ", gap) + right
	}
	return padLine(bar, m.width)
}

func (m *Model) statusLine() string {
	st := m.c.st
	var parts []string
	for i, src := range m.binds.sources {
		h := m.binds.health[i]
		dot := st.ok
		switch h.State {
		case HealthConnecting, HealthStale:
			dot = st.warn
		case HealthDown:
			dot = st.bad
		}
		parts = append(parts, dot.render("● "+src.Name()+" "+h.State.String())+": "+h.Detail)
	}
	if len(m.binds.sources) == 0 {
		parts = append(parts, st.dim.render("no live bindings source"))
	}
	if m.flash != "" {
		if m.flashBad {
			parts = append(parts, st.bad.render(m.flash))
		} else {
			parts = append(parts, st.ok.render(m.flash))
		}
	} else {
		parts = append(parts, m.notes...)
	}
	return padLine(" "+strings.Join(parts, " │ "), m.width)
}

func (m *Model) helpView(h int) string {
	st := m.c.st
	groups := m.c.keys.help(m.screen)
	var cols []string
	for _, g := range groups {
		var b strings.Builder
		b.WriteString(st.DialogTitle.Render(g.title))
		b.WriteByte('\n')
		w := 0
		for _, k := range g.keys {
			w = max(w, lipgloss.Width(k.Help().Key))
		}
		for _, k := range g.keys {
			if !k.Enabled() {
				continue
			}
			hk := k.Help()
			b.WriteString(st.HelpKey.Render(padLine(hk.Key, w)) + "  " + st.HelpDesc.Render(hk.Desc) + "\n")
		}
		cols = append(cols, b.String())
	}
	grid := lipgloss.JoinHorizontal(lipgloss.Top, spaced(cols)...)
	var legend string
	switch m.screen {
	case screenPreview:
		legend = "\nGutter: E exact 5-tuple · L listener · W wildcard listener · = username kept · ? --unknown text · - no username\n"
	case screenFiles:
		legend = "\nUSERNAMES counts the records that already carry one (… while counting).\n"
	}
	box := st.Dialog.Render(st.DialogTitle.Render("Keys — "+screenNames[m.screen]) + "\n\n" + grid + legend +
		"\n" + st.HelpDesc.Render("any key closes this help"))
	return lipgloss.Place(m.width, h, lipgloss.Center, lipgloss.Center, box)
}

func spaced(cols []string) []string {
	out := make([]string, 0, 2*len(cols))
	for i, c := range cols {
		if i > 0 {
			out = append(out, "    ")
		}
		out = append(out, c)
	}
	return out
}
