package flowfmt

import (
	"math"
	"strconv"
	"time"
)

// This file holds the append-style helpers that reproduce the printf
// conversions nfdump 1.7.1 uses (%Nu, %-Ns, %N.Mf, %0N.Mf ...) without
// fmt, so that formatting a record does not allocate.

const spaces = "                                                                "

// rjust right-justifies b[start:] to width with spaces, like printf "%Ns".
func rjust(b []byte, start, width int) []byte {
	n := len(b) - start
	if n >= width {
		return b
	}
	pad := width - n
	for pad > 0 {
		k := min(pad, len(spaces))
		b = append(b, spaces[:k]...)
		pad -= k
	}
	pad = width - n
	copy(b[start+pad:], b[start:start+n])
	for i := start; i < start+pad; i++ {
		b[i] = ' '
	}
	return b
}

// ljust pads b[start:] to width with trailing spaces, like printf "%-Ns".
func ljust(b []byte, start, width int) []byte {
	for n := len(b) - start; n < width; {
		k := min(width-n, len(spaces))
		b = append(b, spaces[:k]...)
		n += k
	}
	return b
}

// appendUintW appends v right-justified to width, like "%Nu".
func appendUintW(b []byte, v uint64, width int) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 10)
	return rjust(b, start, width)
}

// appendUintL appends v left-justified to width, like "%-Nu".
func appendUintL(b []byte, v uint64, width int) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 10)
	return ljust(b, start, width)
}

// appendIntZ appends v zero-padded to width, like "%0Nd" (the sign comes
// first and counts toward the width).
func appendIntZ(b []byte, v int64, width int) []byte {
	if v < 0 {
		b = append(b, '-')
		width--
		u := uint64(-v)
		if v == math.MinInt64 {
			u = 1 << 63
		}
		return appendUintZ(b, u, width)
	}
	return appendUintZ(b, uint64(v), width)
}

func appendUintZ(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendFloatW appends x with prec decimals, right-justified to width,
// like "%W.Pf". Go's strconv rounds exactly (half to even on exact ties),
// as glibc does.
func appendFloatW(b []byte, x float64, prec, width int) []byte {
	start := len(b)
	b = strconv.AppendFloat(b, x, 'f', prec, 64)
	return rjust(b, start, width)
}

// appendFloatZ appends x like "%0W.Pf": zero-padded after the sign.
func appendFloatZ(b []byte, x float64, prec, width int) []byte {
	var tmp [64]byte
	s := strconv.AppendFloat(tmp[:0], x, 'f', prec, 64)
	if len(s) > 0 && s[0] == '-' {
		b = append(b, '-')
		s = s[1:]
		width--
	}
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendHexW appends v in lower-case hex, zero-padded to width ("%0Nx").
func appendHexZ(b []byte, v uint64, width int) []byte {
	var tmp [16]byte
	s := strconv.AppendUint(tmp[:0], v, 16)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendHexL appends v in lower-case hex left-justified to width ("%-Nx").
func appendHexL(b []byte, v uint64, width int) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 16)
	return ljust(b, start, width)
}

// Scale limits of nfdump's format_number (decimal units).
const (
	scaleM = 1000.0 * 1000.0
	scaleG = 1000.0 * scaleM
	scaleT = 1000.0 * scaleG
)

// appendNumber appends num the way nfdump's format_number does: plain
// digits, or scaled to "1.2 M", "3.4 G", "5.6 T" from one million up.
// fixed selects the FIXED_WIDTH variant ("%5.1f M" / "%4.0f").
func appendNumber(b []byte, num uint64, plain, fixed bool) []byte {
	if plain {
		return strconv.AppendUint(b, num, 10)
	}
	f := float64(num)
	var unit byte
	switch {
	case f >= scaleT:
		f, unit = f/scaleT, 'T'
	case f >= scaleG:
		f, unit = f/scaleG, 'G'
	case f >= scaleM:
		f, unit = f/scaleM, 'M'
	default:
		if fixed {
			return appendUintW(b, num, 4)
		}
		return strconv.AppendUint(b, num, 10)
	}
	if fixed {
		b = appendFloatW(b, f, 1, 5)
	} else {
		b = strconv.AppendFloat(b, f, 'f', 1, 64)
	}
	return append(b, ' ', unit)
}

// appendNumber8 is "%8s" of format_number(num, plain, FIXED_WIDTH), the
// packet and byte columns.
func appendNumber8(b []byte, num uint64, plain bool) []byte {
	start := len(b)
	b = appendNumber(b, num, plain, true)
	return rjust(b, start, 8)
}

// cvtInt32 converts like the x86-64 cvttsd2si instruction that C's
// (int)double compiles to: values outside the int32 range (and NaN) give
// math.MinInt32. nfdump relies on this for reversed flow times.
func cvtInt32(x float64) int32 {
	if x != x || x >= 2147483648.0 || x <= -2147483649.0 {
		return math.MinInt32
	}
	return int32(x)
}

// cvtUint64 converts like gcc's double -> uint64_t conversion on x86-64.
func cvtUint64(x float64) uint64 {
	const two63 = 9223372036854775808.0
	cvt := func(v float64) uint64 {
		if v != v || v >= two63 || v < -two63 {
			return 1 << 63
		}
		return uint64(int64(v))
	}
	if x < two63 {
		return cvt(x)
	}
	return cvt(x-two63) ^ (1 << 63)
}

// duration returns nfdump's flow duration in seconds. Like nfdump it
// subtracts the unsigned millisecond times, so a flow that ends before it
// starts gets a duration of about 2^64 ms.
func duration(first, last uint64) float64 {
	return float64(last-first) / 1000.0
}

// maxExactMs bounds the durations appendDurationMs formats with integer
// arithmetic: below it nfdump's int arithmetic (86400 * days) does not
// overflow, and the double it computes is within far less than half a
// millisecond of the exact value, so both give the same text.
const maxExactMs = 24855 * 86400000

// appendDurationMs appends the %td column of a flow from first to last
// (milliseconds), as appendDuration does, but without floating point for
// the common case.
func appendDurationMs(b []byte, first, last uint64, plain bool) []byte {
	ms := last - first
	if plain || last < first || ms >= maxExactMs {
		return appendDuration(b, duration(first, last), plain)
	}
	days := ms / 86400000
	ms -= days * 86400000
	if days == 0 {
		b = append(b, "    "...)
	} else {
		b = appendUintW(b, days, 2)
		b = append(b, 'd', ' ')
	}
	h, m, s := ms/3600000, ms/60000%60, ms/1000%60
	ms %= 1000
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// appendDuration appends the %td column: "    HH:MM:SS.mmm", "Nd HH:MM:SS.mmm"
// or, with plain numbers, "%16.3f" seconds.
func appendDuration(b []byte, d float64, plain bool) []byte {
	if plain {
		return appendFloatW(b, d, 3, 16)
	}
	days := cvtInt32(d / 86400)
	sum := 86400 * days // wraps like the C int arithmetic
	hours := cvtInt32((d - float64(sum)) / 3600)
	sum += 3600 * hours
	mins := cvtInt32((d - float64(sum)) / 60)
	sec := d - float64(sum) - float64(60*mins)
	if days == 0 {
		b = append(b, "    "...)
	} else {
		start := len(b)
		b = strconv.AppendInt(b, int64(days), 10)
		b = rjust(b, start, 2)
		b = append(b, 'd', ' ')
	}
	b = appendIntZ(b, int64(hours), 2)
	b = append(b, ':')
	b = appendIntZ(b, int64(mins), 2)
	b = append(b, ':')
	return appendFloatZ(b, sec, 3, 6)
}

// timeCache remembers the rendering of the last second it formatted; flow
// files are mostly in time order, so most records hit it.
type timeCache struct {
	sec int64
	ok  bool
	buf []byte
}

// appendDateTime appends "YYYY-MM-DD hh:mm:ss" of Unix second sec in loc,
// as strftime("%Y-%m-%d %H:%M:%S", localtime()) prints it.
func (c *timeCache) appendDateTime(b []byte, sec int64, loc *time.Location) []byte {
	if !c.ok || c.sec != sec {
		t := time.Unix(sec, 0).In(loc)
		y, mo, d := t.Date()
		h, mi, s := t.Clock()
		buf := c.buf[:0]
		buf = strconv.AppendInt(buf, int64(y), 10)
		buf = append(buf, '-', byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10), ' ',
			byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10))
		c.buf, c.sec, c.ok = buf, sec, true
	}
	return append(b, c.buf...)
}

// appendMsecTime appends "YYYY-MM-DD hh:mm:ss.mmm" of a millisecond time,
// the way nfdump 1.7.1 prints %ts/%te/%tr (no special case for 0).
func (c *timeCache) appendMsecTime(b []byte, msec uint64, loc *time.Location) []byte {
	b = c.appendDateTime(b, int64(msec/1000), loc)
	ms := msec % 1000
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// appendMsecRaw appends "seconds.mmm" (%tsr and friends).
func appendMsecRaw(b []byte, msec uint64) []byte {
	b = strconv.AppendUint(b, msec/1000, 10)
	ms := msec % 1000
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}
