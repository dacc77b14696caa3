package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// Text layout helpers for the table rows. They work on plain text (no
// escape sequences) and take a fast path for ASCII, which is what nearly
// every cell is.

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// textWidth returns the number of terminal cells s takes.
func textWidth(s string) int {
	if isASCII(s) {
		return len(s)
	}
	return ansi.StringWidth(s)
}

// cut returns the prefix of s that fits in w cells, ending in "…" when s
// was longer.
func cut(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if isASCII(s) {
		if len(s) <= w {
			return s
		}
		if w == 1 {
			return "…"
		}
		return s[:w-1] + "…"
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// cutLeft returns the suffix of s that fits in w cells, starting with
// "…" when s was longer: for addresses, whose port is at the end.
func cutLeft(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if !isASCII(s) || len(s) <= w {
		return cut(s, w)
	}
	if w == 1 {
		return "…"
	}
	return "…" + s[len(s)-(w-1):]
}

// appendCell appends s cut or padded to exactly w cells; right aligns it.
func appendCell(dst []byte, s string, w int, right bool) []byte {
	s = cut(s, w)
	pad := w - textWidth(s)
	if right {
		dst = appendSpaces(dst, pad)
		return append(dst, s...)
	}
	dst = append(dst, s...)
	return appendSpaces(dst, pad)
}

const spaces = "                                                                                "

func appendSpaces(dst []byte, n int) []byte {
	for n > 0 {
		k := min(n, len(spaces))
		dst = append(dst, spaces[:k]...)
		n -= k
	}
	return dst
}

// window returns the cells [from, from+w) of a plain line, padded with
// spaces to w: horizontal scrolling of preview lines.
func window(s string, from, w int) string {
	if w <= 0 {
		return ""
	}
	if isASCII(s) {
		if from >= len(s) {
			return strings.Repeat(" ", w)
		}
		s = s[from:]
		if len(s) >= w {
			return s[:w]
		}
		return s + strings.Repeat(" ", w-len(s))
	}
	s = ansi.Cut(s, from, from+w)
	if pad := w - ansi.StringWidth(s); pad > 0 {
		s += strings.Repeat(" ", pad)
	}
	return s
}

// padLine pads (or cuts) a line that may hold escape sequences to w cells.
func padLine(s string, w int) string {
	n := ansi.StringWidth(s)
	switch {
	case n == w:
		return s
	case n < w:
		return s + strings.Repeat(" ", w-n)
	}
	return ansi.Truncate(s, w, "…")
}

// count returns n followed by the noun in the form n needs: "1 file",
// "0 files", "2 entries".
func count[N ~int | ~int32 | ~int64 | ~uint32 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
