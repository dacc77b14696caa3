package flowfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Location returns the time zone a $TZ value names the way the C library
// nfdump uses reads it: a zone name ("Europe/Berlin", with or without a
// leading ':'), the path of a zone file, or a POSIX rule such as "JST-9"
// or "CET-1CEST,M3.5.0,M10.5.0/3" (an offset west of UTC, then optional
// daylight time and its rules). Go's time.LoadLocation knows only the
// first form, and treating the others as UTC would print other times than
// nfdump does.
func Location(tz string) (*time.Location, error) {
	tz = strings.TrimRight(tz, " \t") // the C library ignores trailing blanks
	name := strings.TrimPrefix(tz, ":")
	if name == "" {
		return time.UTC, nil
	}
	if filepath.IsAbs(name) {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("TZ %q: %w", tz, err)
		}
		return time.LoadLocationFromTZData(name, data)
	}
	if loc, err := time.LoadLocation(name); err == nil {
		return loc, nil
	}
	if strings.HasPrefix(tz, ":") {
		return nil, fmt.Errorf("TZ %q: no such zone", tz)
	}
	return posixLocation(tz)
}

// posixStd matches the standard-time part of a POSIX TZ rule: a name of
// three or more letters (or anything in <>) and an offset west of UTC,
// [+-]hh[:mm[:ss]].
var posixStd = regexp.MustCompile(`^(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)([+-]?)(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?`)

// posixLocation builds a Location for a POSIX TZ rule. Go applies such a
// rule (the footer of a zone file) to every time after the file's last
// transition, so a zone file with no transitions and the rule as its
// footer follows the rule at all times.
func posixLocation(rule string) (*time.Location, error) {
	m := posixStd.FindStringSubmatch(rule)
	if m == nil {
		return nil, fmt.Errorf("TZ %q: neither a zone name nor a POSIX rule like JST-9", rule)
	}
	secs := 0
	for i, unit := range []int{3600, 60, 1} {
		if m[2+i] == "" {
			continue
		}
		n, _ := strconv.Atoi(m[2+i])
		secs += n * unit
	}
	if secs > 24*3600 {
		return nil, fmt.Errorf("TZ %q: offset over 24 hours", rule)
	}
	if m[1] != "-" {
		secs = -secs // POSIX offsets count west of UTC
	}
	loc, err := time.LoadLocationFromTZData(rule, tzifWithRule(rule, secs))
	if err != nil {
		return nil, fmt.Errorf("TZ %q: %w", rule, err)
	}
	// A rule Go cannot follow leaves it at the zone's one type, which is
	// named "?": refuse rather than print standard time all year.
	for _, t := range []time.Time{time.Date(2023, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2023, 7, 15, 12, 0, 0, 0, time.UTC)} {
		if name, _ := t.In(loc).Zone(); name == "?" {
			return nil, errors.New("TZ " + strconv.Quote(rule) + ": a POSIX rule this program cannot follow")
		}
	}
	return loc, nil
}

// tzifWithRule returns a version 2 zone file (RFC 8536) with one time type
// (offset secs east of UTC, named "?") and no transitions, and rule as its
// footer.
func tzifWithRule(rule string, secs int) []byte {
	header := func(b []byte) []byte {
		b = append(b, "TZif2"...)
		b = append(b, make([]byte, 15)...)
		// isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
		for _, n := range []uint32{0, 0, 0, 0, 1, 2} {
			b = binary.BigEndian.AppendUint32(b, n)
		}
		return b
	}
	body := func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(int32(secs)))
		b = append(b, 0, 0) // not daylight time; name at 0
		return append(b, '?', 0)
	}
	var b []byte
	b = body(header(b)) // version 1 part
	b = body(header(b)) // version 2 part (64-bit times; there are none)
	b = append(b, '\n')
	b = append(b, rule...)
	return append(b, '\n')
}
