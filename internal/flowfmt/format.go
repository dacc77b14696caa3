package flowfmt

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/netdumper/netdumper/nfcap"
)

// Kind is the family of an output format.
type Kind uint8

// Output format families.
const (
	// Text is nfdump's column output: the predefined line/long/extended
	// formats and "fmt:" strings.
	Text Kind = iota
	// CSV is nfdump 1.7.1's fixed "-o csv" layout.
	CSV
	// JSON is netdumper's NDJSON: one object per record (see the package
	// documentation for the schema).
	JSON
)

// Options tune a Format. The zero value prints like nfdump without -N in
// the local time zone.
type Options struct {
	// Plain prints numbers unscaled (nfdump -N): "1500000" instead of
	// "1.5 M", durations as seconds, protocols as numbers.
	Plain bool
	// Location is the time zone for printed times; nil means time.Local,
	// which follows $TZ as nfdump's localtime() does.
	Location *time.Location
	// LongV6 prints IPv6 addresses in full in 39-character columns (nfdump
	// -6, or a predefined format name ending in "6" such as "line6").
	LongV6 bool
}

// ErrSyntax is wrapped by every error Parse returns for a bad format.
var ErrSyntax = errors.New("output format error")

// Predefined text formats of nfdump 1.7.1 (printmap in nfdump.c). The ones
// that need a geo database (gline, glong) are not offered.
var predefined = []struct{ name, format string }{
	{"line", "%ts %td %pr %sap -> %dap %pkt %byt %fl"},
	{"gline", ""},
	{"long", "%ts %td %pr %sap -> %dap %flg %tos %pkt %byt %fl"},
	{"glong", ""},
	{"extended", "%ts %td %pr %sap -> %dap %flg %tos %pkt %byt %pps %bps %bpp %fl"},
	{"biline", "%ts %td %pr %sap <-> %dap %opkt %ipkt %obyt %ibyt %fl"},
	{"bilong", "%ts %td %pr %sap <-> %dap %flg %tos %opkt %ipkt %obyt %ibyt %fl"},
	{"nsel", "%tevt %evt %xevt %pr %sap -> %dap %xsap -> %xdap %ibyt %obyt"},
	{"nel", "%tevt %nevt %pr %sap -> %dap %nsap -> %ndap"},
}

// PredefinedNames lists the names Parse accepts besides "fmt:...", "csv"
// and "json".
func PredefinedNames() []string {
	var names []string
	for _, p := range predefined {
		if p.format != "" {
			names = append(names, p.name)
		}
	}
	return names
}

// item is one piece of a compiled text format: a token or literal text.
type item struct {
	tok *token
	lit string
}

// Format is a compiled output format. It is not safe for concurrent use
// (it caches the last rendered times); compile one per goroutine.
type Format struct {
	kind   Kind
	spec   string
	items  []item
	header string
	plain  bool
	longV6 bool
	loc    *time.Location

	tFirst, tLast, tOther timeCache

	// Per-record state: %sn/%dn mask the addresses in place in nfdump, so
	// later tokens of the same line see the masked address.
	src, dst netip.Addr
	// count numbers the text records (%cnt); tunnel is set while the
	// extra tunnel line is printed (a zeroed record in nfdump).
	count  uint64
	tunnel bool
}

// Parse compiles an nfdump output format: a predefined name ("line",
// "long", "extended", "biline", "bilong", "nsel", "nel", optionally with a
// trailing "6" for full IPv6 addresses), "fmt:" followed by a format
// string of %tokens and literal text, "csv", or "json" (also "ndjson").
// Names are case-insensitive as in nfdump.
func Parse(spec string, opts Options) (*Format, error) {
	fm := &Format{spec: spec, plain: opts.Plain, longV6: opts.LongV6, loc: opts.Location}
	if fm.loc == nil {
		fm.loc = time.Local
	}
	if len(spec) >= 4 && strings.EqualFold(spec[:4], "fmt:") {
		if len(spec) == 4 {
			return nil, fmt.Errorf("%w: %q has no format description", ErrSyntax, spec)
		}
		if err := fm.compile(spec[4:]); err != nil {
			return nil, err
		}
		return fm, nil
	}
	name := spec
	if len(name) > 2 && name[len(name)-1] == '6' {
		fm.longV6 = true
		name = name[:len(name)-1]
	}
	switch strings.ToLower(name) {
	case "csv":
		fm.kind = CSV
		fm.header = csvHeader
		return fm, nil
	case "json", "ndjson":
		fm.kind = JSON
		return fm, nil
	}
	for _, p := range predefined {
		if strings.EqualFold(name, p.name) {
			if p.format == "" {
				return nil, fmt.Errorf("%w: output format %q needs a geo database, which netdumper does not support", ErrSyntax, spec)
			}
			if err := fm.compile(p.format); err != nil {
				return nil, err
			}
			return fm, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown output format %q (want %s, csv, json or fmt:...)", ErrSyntax, spec, strings.Join(PredefinedNames(), ", "))
}

// MustParse is Parse for formats known to be valid; it panics on error.
func MustParse(spec string, opts Options) *Format {
	fm, err := Parse(spec, opts)
	if err != nil {
		panic(err)
	}
	return fm
}

// isAlpha is C's isalpha in the C locale.
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// expandPredefined replaces "%line", "%long", ... inside a fmt: string the
// way nfdump 1.7.1's RecursiveReplace does: for each predefined name, only
// its first occurrence is considered, and only if a '%' precedes it and no
// letter follows it.
func expandPredefined(format string) string {
	for _, p := range predefined {
		if p.format == "" {
			continue
		}
		i := strings.Index(format, p.name)
		if i <= 0 {
			continue
		}
		end := i + len(p.name)
		if end < len(format) && isAlpha(format[end]) {
			continue
		}
		if format[i-1] != '%' {
			continue
		}
		format = format[:i-1] + p.format + format[end:]
	}
	return format
}

// compile parses a text format string into items and builds the header.
func (fm *Format) compile(format string) error {
	fm.kind = Text
	s := expandPredefined(format)
	var hdr strings.Builder
	for len(s) > 0 {
		if s[0] != '%' {
			n := strings.IndexByte(s, '%')
			if n < 0 {
				n = len(s)
			}
			fm.items = append(fm.items, item{lit: s[:n]})
			hdr.WriteString(strings.Repeat(" ", n))
			s = s[n:]
			continue
		}
		t := matchToken(s)
		if t == nil {
			return fmt.Errorf("%w: parse error at: %s", ErrSyntax, s)
		}
		if t.fn == nil {
			return fmt.Errorf("%w: token %s is not supported by netdumper (%s)", ErrSyntax, t.name, t.why)
		}
		fm.items = append(fm.items, item{tok: t})
		if fm.longV6 && t.addr {
			hdr.WriteString(strings.Repeat(" ", 23))
		}
		hdr.WriteString(t.header)
		s = s[len(t.name):]
	}
	fm.header = hdr.String()
	return nil
}

// matchToken finds the token at the start of s like nfdump 1.7.1: the
// first token of the table that is a prefix of s and is not followed by a
// letter (so "%mpls10" reads as "%mpls1" and a literal "0").
func matchToken(s string) *token {
	for i := range tokens {
		t := &tokens[i]
		if !strings.HasPrefix(s, t.name) {
			continue
		}
		if len(s) > len(t.name) && isAlpha(s[len(t.name)]) {
			continue
		}
		return t
	}
	return nil
}

// Kind returns the format family.
func (fm *Format) Kind() Kind { return fm.kind }

// String returns the format as given to Parse.
func (fm *Format) String() string { return fm.spec }

// Header returns the header line nfdump prints before the records (without
// a newline): the column titles for text formats, the field names for CSV,
// and "" for JSON.
func (fm *Format) Header() string { return fm.header }

// AppendRecord appends the formatted flow, newline included, to dst and
// returns the extended buffer. It does not allocate once dst has room.
func (fm *Format) AppendRecord(dst []byte, f *nfcap.Flow) []byte {
	if fm.kind == JSON {
		return fm.appendJSON(dst, f)
	}
	if f.Has(nfcap.ElemTunIPv4) || f.Has(nfcap.ElemTunIPv6) {
		// nfdump prints a line for the tunnel endpoints first.
		dst = fm.appendTunnel(dst, f)
	}
	fm.count++
	if fm.kind == CSV {
		return fm.appendCSV(dst, f)
	}
	return fm.appendText(dst, f)
}

func (fm *Format) appendText(dst []byte, f *nfcap.Flow) []byte {
	fm.src, fm.dst = f.SrcAddr, f.DstAddr
	for i := range fm.items {
		it := &fm.items[i]
		if it.tok != nil {
			dst = it.tok.fn(fm, dst, f)
		} else {
			dst = append(dst, it.lit...)
		}
	}
	return append(dst, '\n')
}

// appendTunnel prints the line nfdump adds for a tunnelled flow: a zeroed
// record holding only the tunnel addresses, protocol and the flow times
// (so %fl and %cnt print 0 there).
func (fm *Format) appendTunnel(dst []byte, f *nfcap.Flow) []byte {
	fm.tunnel = true
	defer func() { fm.tunnel = false }()
	t := nfcap.Flow{
		Proto:     uint8(f.TunProto),
		SrcAddr:   f.TunSrcAddr,
		DstAddr:   f.TunDstAddr,
		MsecFirst: f.MsecFirst,
		MsecLast:  f.MsecLast,
	}
	if fm.kind == CSV {
		// nfdump's CSV tunnel line has the right family but no addresses.
		if t.SrcAddr.Is6() {
			t.SrcAddr, t.DstAddr = netip.IPv6Unspecified(), netip.IPv6Unspecified()
		} else {
			t.SrcAddr, t.DstAddr = netip.IPv4Unspecified(), netip.IPv4Unspecified()
		}
		return fm.appendCSV(dst, &t)
	}
	return fm.appendText(dst, &t)
}

// Column is one column of a text format, for callers (such as a TUI) that
// lay out the columns themselves.
type Column struct {
	// Token is the nfdump token, e.g. "%sap"; "" for literal text.
	Token string
	// Header is the column title as nfdump prints it (spaces for literal
	// text).
	Header string
	// Literal is the text of a literal column.
	Literal string
}

// Columns returns the columns of a text format in order (nil for CSV and
// JSON). AppendColumn formats one of them.
func (fm *Format) Columns() []Column {
	if fm.kind != Text {
		return nil
	}
	cols := make([]Column, len(fm.items))
	for i, it := range fm.items {
		if it.tok == nil {
			cols[i] = Column{Header: strings.Repeat(" ", len(it.lit)), Literal: it.lit}
			continue
		}
		h := it.tok.header
		if fm.longV6 && it.tok.addr {
			h = strings.Repeat(" ", 23) + h
		}
		cols[i] = Column{Token: it.tok.name, Header: h}
	}
	return cols
}

// AppendColumn appends column i of f (without a newline). Columns that
// depend on earlier ones in nfdump (a %sa after %sn prints the masked
// address) are formatted as if alone.
func (fm *Format) AppendColumn(dst []byte, i int, f *nfcap.Flow) []byte {
	it := &fm.items[i]
	if it.tok == nil {
		return append(dst, it.lit...)
	}
	fm.src, fm.dst = f.SrcAddr, f.DstAddr
	return it.tok.fn(fm, dst, f)
}
