package tui

// scroller is the cursor and the first visible row of a list of n rows
// shown height rows at a time. Every list of the TUI uses one, so they
// all move, page and keep the cursor in view the same way.
type scroller struct {
	n, height      int
	cursor, offset int
}

// setLen changes the number of rows, keeping the cursor in range.
func (s *scroller) setLen(n int) {
	s.n = n
	s.clamp()
}

// setHeight changes the visible height, keeping the cursor visible.
func (s *scroller) setHeight(h int) {
	s.height = max(h, 1)
	s.clamp()
}

func (s *scroller) clamp() {
	s.cursor = max(0, min(s.cursor, s.n-1))
	s.show()
}

// show scrolls so that the cursor is visible.
func (s *scroller) show() {
	h := max(s.height, 1)
	if s.cursor < s.offset {
		s.offset = s.cursor
	}
	if s.cursor >= s.offset+h {
		s.offset = s.cursor - h + 1
	}
	s.offset = max(0, min(s.offset, s.n-h))
}

// moveTo puts the cursor on row i (clamped).
func (s *scroller) moveTo(i int) {
	s.cursor = i
	s.clamp()
}

// move moves the cursor by d rows.
func (s *scroller) move(d int) { s.moveTo(s.cursor + d) }

// page moves the cursor and the view by d pages, keeping the cursor on
// the same screen row.
func (s *scroller) page(d int) {
	h := max(s.height, 1)
	rel := s.cursor - s.offset
	s.offset = max(0, min(s.offset+d*h, s.n-h))
	s.cursor = s.offset + rel
	s.clamp()
}

// keepAt puts the cursor on row i while keeping it on screen row rel
// (where it was before the rows changed), so that live updates do not
// make the table jump.
func (s *scroller) keepAt(i, rel int) {
	s.cursor = max(0, min(i, s.n-1))
	s.offset = s.cursor - rel
	h := max(s.height, 1)
	s.offset = max(0, min(s.offset, s.n-h))
	s.show()
}

// scroll moves the view by d rows (mouse wheel), dragging the cursor
// along when it would leave the screen.
func (s *scroller) scroll(d int) {
	h := max(s.height, 1)
	s.offset = max(0, min(s.offset+d, s.n-h))
	if s.cursor < s.offset {
		s.cursor = s.offset
	}
	if s.cursor >= s.offset+h {
		s.cursor = s.offset + h - 1
	}
	s.cursor = max(0, min(s.cursor, s.n-1))
}

// visible returns the range of rows on screen.
func (s *scroller) visible() (from, to int) {
	return s.offset, min(s.n, s.offset+max(s.height, 1))
}

// layoutColumns gives each column its natural width, then takes cells
// away from the shrinkable ones (in the order given) down to their
// minimum until the row fits in avail cells (sep cells between columns).
func layoutColumns(natural, minimum []int, shrinkOrder []int, sep, avail int) []int {
	w := append([]int(nil), natural...)
	total := func() int {
		t := 0
		for _, x := range w {
			t += x
		}
		if len(w) > 1 {
			t += sep * (len(w) - 1)
		}
		return t
	}
	over := total() - avail
	for _, c := range shrinkOrder {
		if over <= 0 {
			break
		}
		take := min(over, w[c]-minimum[c])
		if take > 0 {
			w[c] -= take
			over -= take
		}
	}
	return w
}
