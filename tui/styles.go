package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// paint is a style reduced to the escape sequences around its text, so
// that the hot paths (table rows) can colour text without calling
// lipgloss for every cell. With the ASCII profile (NO_COLOR, tests) both
// strings are empty.
type paint struct{ pre, post string }

// paintOf extracts the sequences lipgloss writes around a one-character
// text. Only colours and attributes survive: widths and padding do not.
func paintOf(st lipgloss.Style) paint {
	const mark = "\x01"
	s := st.Render(mark)
	i := strings.Index(s, mark)
	if i < 0 {
		return paint{}
	}
	return paint{pre: s[:i], post: s[i+len(mark):]}
}

func (p paint) render(s string) string {
	if p.pre == "" && p.post == "" {
		return s
	}
	return p.pre + s + p.post
}

// Styles holds every style of the TUI. Colours are adaptive (one value
// for light, one for dark terminals); with NO_COLOR the renderer's ASCII
// profile drops them all, and the TUI marks state with characters as well
// (a ">" gutter for the cursor, "*" for marked files, a match letter in
// the preview), so nothing depends on colour alone.
type Styles struct {
	TabBar      lipgloss.Style
	TabActive   lipgloss.Style
	TabInactive lipgloss.Style
	Title       lipgloss.Style
	Header      lipgloss.Style // table headers
	Status      lipgloss.Style // the status line
	Dialog      lipgloss.Style // boxes: commit dialog, help
	DialogTitle lipgloss.Style
	HelpKey     lipgloss.Style
	HelpDesc    lipgloss.Style
	Bar         lipgloss.Style // the filled part of progress bars

	// Reduced to escape sequences for rows (see paint).
	cursor    paint
	marked    paint
	dim       paint
	day       paint
	dir       paint
	matched   paint
	kept      paint
	unknown   paint
	unmatched paint
	ok        paint
	warn      paint
	bad       paint
	key       paint
	accent    paint
}

// Palette: adaptive colours readable on light and dark backgrounds.
var (
	colAccent    = lipgloss.AdaptiveColor{Light: "#5A3FC0", Dark: "#9D8CFF"}
	colMuted     = lipgloss.AdaptiveColor{Light: "#6B6B6B", Dark: "#8A8A8A"}
	colGood      = lipgloss.AdaptiveColor{Light: "#1B7F3B", Dark: "#5FD38D"}
	colInfo      = lipgloss.AdaptiveColor{Light: "#0B6E99", Dark: "#63C5EA"}
	colWarn      = lipgloss.AdaptiveColor{Light: "#9A6700", Dark: "#E3B341"}
	colBad       = lipgloss.AdaptiveColor{Light: "#B42318", Dark: "#FF7B72"}
	colBarBg     = lipgloss.AdaptiveColor{Light: "#E4E4E4", Dark: "#262626"}
	colCursorBg  = lipgloss.AdaptiveColor{Light: "#D9D2FF", Dark: "#3B3270"}
	colMarkedFg  = lipgloss.AdaptiveColor{Light: "#8B3D00", Dark: "#FFB86B"}
	colTabActive = lipgloss.AdaptiveColor{Light: "#FFFFFF", Dark: "#1A1A1A"}
)

// NewStyles builds the styles for a renderer (which decides the colour
// profile and whether the background is dark).
func NewStyles(r *lipgloss.Renderer) *Styles {
	ns := r.NewStyle
	s := &Styles{
		TabBar:      ns().Background(colBarBg),
		TabActive:   ns().Bold(true).Foreground(colTabActive).Background(colAccent).Padding(0, 1),
		TabInactive: ns().Foreground(colMuted).Background(colBarBg).Padding(0, 1),
		Title:       ns().Bold(true).Foreground(colAccent),
		Header:      ns().Bold(true).Foreground(colAccent),
		Status:      ns().Background(colBarBg),
		Dialog:      ns().Border(lipgloss.RoundedBorder()).BorderForeground(colAccent).Padding(0, 1),
		DialogTitle: ns().Bold(true).Foreground(colAccent),
		HelpKey:     ns().Bold(true).Foreground(colInfo),
		HelpDesc:    ns().Foreground(colMuted),
		Bar:         ns().Foreground(colAccent),
	}
	s.cursor = paintOf(ns().Background(colCursorBg).Bold(true))
	s.marked = paintOf(ns().Foreground(colMarkedFg).Bold(true))
	s.dim = paintOf(ns().Foreground(colMuted))
	s.day = paintOf(ns().Bold(true).Foreground(colInfo))
	s.dir = paintOf(ns().Bold(true).Foreground(colAccent))
	s.matched = paintOf(ns().Foreground(colGood))
	s.kept = paintOf(ns().Foreground(colInfo))
	s.unknown = paintOf(ns().Foreground(colWarn))
	s.unmatched = paintOf(ns().Foreground(colBad))
	s.ok = paintOf(ns().Foreground(colGood))
	s.warn = paintOf(ns().Foreground(colWarn))
	s.bad = paintOf(ns().Foreground(colBad).Bold(true))
	s.key = paintOf(ns().Bold(true).Foreground(colInfo))
	s.accent = paintOf(ns().Bold(true).Foreground(colAccent))
	return s
}
