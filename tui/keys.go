package tui

import "github.com/charmbracelet/bubbles/key"

// KeyMap is every key binding of the TUI. The help overlay (?) is built
// from it, so changing a binding here changes the help too.
type KeyMap struct {
	// Global.
	Quit        key.Binding
	Help        key.Binding
	NextTab     key.Binding
	PrevTab     key.Binding
	TabBindings key.Binding
	TabFiles    key.Binding
	TabPreview  key.Binding

	// Movement, in every list.
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Top      key.Binding
	Bottom   key.Binding
	Left     key.Binding
	Right    key.Binding

	// Bindings screen.
	Filter  key.Binding
	Sort    key.Binding
	Reverse key.Binding
	History key.Binding

	// Files screen.
	Open    key.Binding
	Parent  key.Binding
	Mark    key.Binding
	MarkAll key.Binding
	Commit  key.Binding
	Refresh key.Binding

	// Preview screen.
	Search    key.Binding
	NextMatch key.Binding
	PrevMatch key.Binding
	Back      key.Binding

	// Text inputs (filter, search) and dialogs.
	Accept  key.Binding
	Cancel  key.Binding
	Confirm key.Binding
}

// DefaultKeyMap returns the default bindings.
func DefaultKeyMap() *KeyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return &KeyMap{
		Quit:        b("q", "quit", "q", "ctrl+c"),
		Help:        b("?", "help", "?"),
		NextTab:     b("tab", "next screen", "tab"),
		PrevTab:     b("shift+tab", "previous screen", "shift+tab"),
		TabBindings: b("1", "bindings", "1"),
		TabFiles:    b("2", "files", "2"),
		TabPreview:  b("3", "preview", "3"),

		Up:       b("↑/k", "up", "up", "k"),
		Down:     b("↓/j", "down", "down", "j"),
		PageUp:   b("pgup/b", "page up", "pgup", "b", "ctrl+b"),
		PageDown: b("pgdn/f", "page down", "pgdown", "f", "ctrl+f", " "),
		Top:      b("g/home", "first", "g", "home"),
		Bottom:   b("G/end", "last", "G", "end"),
		Left:     b("←", "scroll left", "left"),
		Right:    b("→", "scroll right", "right"),

		Filter:  b("/", "filter (port: proc: user: host: proto: state: pid:, !negates)", "/"),
		Sort:    b("s", "sort by next column", "s"),
		Reverse: b("S", "reverse sort", "S"),
		History: b("h", "show recently closed", "h"),

		Open:    b("enter/→", "open", "enter", "right", "l"),
		Parent:  b("←/⌫", "parent directory", "left", "backspace", "-"),
		Mark:    b("space", "mark file", " "),
		MarkAll: b("a", "mark all / none", "a"),
		Commit:  b("c", "commit labels (marked or selected)", "c"),
		Refresh: b("r", "reload", "r"),

		Search:    b("/", "search", "/"),
		NextMatch: b("n", "next match", "n"),
		PrevMatch: b("N", "previous match", "N"),
		Back:      b("esc/⌫", "back to files", "esc", "backspace"),

		Accept:  b("enter", "apply", "enter"),
		Cancel:  b("esc", "cancel", "esc"),
		Confirm: b("enter/y", "confirm", "enter", "y"),
	}
}

// helpGroup is one titled column of the help overlay.
type helpGroup struct {
	title string
	keys  []key.Binding
}

// help returns the bindings shown by the help overlay on screen s.
func (k *KeyMap) help(s screenID) []helpGroup {
	global := helpGroup{"global", []key.Binding{k.TabBindings, k.TabFiles, k.TabPreview, k.NextTab, k.Help, k.Quit}}
	move := helpGroup{"move", []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}}
	var own helpGroup
	switch s {
	case screenBindings:
		own = helpGroup{"bindings", []key.Binding{k.Filter, k.Sort, k.Reverse, k.History, k.Cancel}}
	case screenFiles:
		own = helpGroup{"files", []key.Binding{k.Open, k.Parent, k.Mark, k.MarkAll, k.Commit, k.Refresh}}
	case screenPreview:
		own = helpGroup{"preview", []key.Binding{k.Search, k.NextMatch, k.PrevMatch, k.Left, k.Right, k.Commit, k.Back}}
	}
	return []helpGroup{own, move, global}
}
