package tui

import (
	"path/filepath"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

func TestScreensAndHelp(t *testing.T) {
	dir := flowDir(t)
	src := newFakeSource("fake", genBindings(30))
	h := newHarness(t, Options{Dir: dir, Sources: []BindingsSource{src}})
	h.until("listing", func() bool { return !h.m.files.listing })
	for _, tc := range []struct {
		keys []string
		want screenID
	}{
		{nil, screenFiles},
		{[]string{"1"}, screenBindings},
		{[]string{"3"}, screenPreview},
		{[]string{"2"}, screenFiles},
		{[]string{"tab"}, screenPreview},
		{[]string{"tab"}, screenBindings},
		{[]string{"shift+tab"}, screenPreview},
	} {
		h.keys(tc.keys...)
		if h.m.screen != tc.want {
			t.Fatalf("after %v: screen %d, want %d", tc.keys, h.m.screen, tc.want)
		}
	}
	// The help lists the keys of the screen shown, from the key map.
	h.keys("1", "?")
	txt := screenText(h.m)
	for _, w := range []string{"Keys — Bindings", "sort by next column", "show recently closed", "quit", "/"} {
		if !strings.Contains(txt, w) {
			t.Errorf("bindings help lacks %q:\n%s", w, txt)
		}
	}
	h.keys("x") // any key closes it, and does nothing else
	if h.m.help || h.m.screen != screenBindings {
		t.Fatal("help not closed")
	}
	h.keys("3", "?")
	if txt := screenText(h.m); !strings.Contains(txt, "Gutter: E exact") || !strings.Contains(txt, "next match") {
		t.Errorf("preview help:\n%s", txt)
	}
	h.keys("esc")

	// esc in the preview goes back to the files.
	h.keys("2", "enter")
	h.until("preview", func() bool { return h.m.screen == screenPreview && h.m.preview.ff != nil })
	h.keys("esc")
	h.until("files", func() bool { return h.m.screen == screenFiles })

	// q quits from any screen without an input focused.
	h.keys("q")
	h.until("quit", h.quitted)
}

func TestQuitKeysInInputs(t *testing.T) {
	h := newHarness(t, Options{Dir: t.TempDir(), Start: "bindings", Sources: []BindingsSource{newFakeSource("f", nil)}})
	h.keys("/", "q", "1", "?")
	if h.quitted() || h.m.help || h.m.screen != screenBindings || h.m.binds.filter != "q1?" {
		t.Fatalf("keys typed into the filter acted globally (quit %v, help %v, filter %q)", h.quitted(), h.m.help, h.m.binds.filter)
	}
	h.keys("ctrl+c") // always quits
	h.until("quit", h.quitted)
}

func TestResizeAndTabClick(t *testing.T) {
	dir := flowDir(t)
	h := newHarness(t, Options{Dir: dir})
	h.until("listing", func() bool { return !h.m.files.listing })
	for _, size := range [][2]int{{80, 24}, {200, 50}, {40, 10}, {20, 6}} {
		h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		for _, s := range []string{"1", "2", "3"} {
			h.keys(s)
			lines := strings.Split(h.m.View(), "\n")
			if len(lines) != size[1] {
				t.Errorf("%dx%d screen %s: %d lines", size[0], size[1], s, len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > size[0] {
					t.Errorf("%dx%d screen %s: line %d is %d wide: %q", size[0], size[1], s, i, w, l)
				}
			}
		}
	}
	h.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	// Click on the tabs.
	for _, tc := range []struct {
		label string
		want  screenID
	}{{"1 Bindings", screenBindings}, {"3 Preview", screenPreview}, {"2 Files", screenFiles}} {
		x := strings.Index(ansi.Strip(h.m.tabBar()), tc.label)
		h.send(mouseClick(x+1, 0))
		if h.m.screen != tc.want {
			t.Errorf("click on %q (x %d): screen %d", tc.label, x, h.m.screen)
		}
	}
	// Click on a file selects it; a second click opens it.
	s := h.m.files
	row := -1
	for i, it := range s.items {
		if filepath.Base(it.path) == "nfcapd.202311142215" {
			row = i
		}
	}
	y := 1 + 2 + row - s.nav.offset
	h.send(mouseClick(5, y))
	if it := s.selected(); filepath.Base(it.path) != "nfcapd.202311142215" {
		t.Fatalf("click selected %q", it.name)
	}
	h.send(mouseClick(5, y))
	h.until("preview", func() bool { return h.m.screen == screenPreview && h.m.preview.path == s.items[row].path })
}
