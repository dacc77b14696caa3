package tui

import (
	"strconv"
	"strings"
)

// The filter of the Bindings screen: space-separated terms, all of which
// must match. A term is plain text (matched anywhere in the row, case
// insensitive) or "prefix:value":
//
//	port:22       the local or the remote port is 22
//	proc:nginx    the process name contains "nginx"
//	user:www      the user name (or uid) contains "www"
//	host:web1     the host name contains "web1"
//	proto:udp     the protocol is udp (a prefix is enough: proto:u)
//	state:listen  the socket state starts with "listen" (state:closed for
//	              closed bindings)
//	pid:1234      the pid is 1234
//	addr:10.0.    the local or remote address contains "10.0."
//
// A leading "!" negates a term (!state:listen). A prefix with no value yet
// ("port:") matches everything, so the table does not blink empty while
// the user types.

type filterField uint8

const (
	fieldAny filterField = iota
	fieldPort
	fieldProc
	fieldUser
	fieldHost
	fieldProto
	fieldState
	fieldPID
	fieldAddr
)

var filterPrefixes = map[string]filterField{
	"port": fieldPort, "proc": fieldProc, "process": fieldProc, "user": fieldUser,
	"host": fieldHost, "proto": fieldProto, "state": fieldState, "pid": fieldPID,
	"addr": fieldAddr,
}

type filterTerm struct {
	field filterField
	value string // lower case
	num   int64  // for port and pid; -1 when value is not a number
	neg   bool
}

// parseFilter splits a filter into terms. Unknown prefixes are plain text.
func parseFilter(s string) []filterTerm {
	var terms []filterTerm
	for _, w := range strings.Fields(strings.ToLower(s)) {
		t := filterTerm{num: -1}
		if strings.HasPrefix(w, "!") && len(w) > 1 {
			t.neg, w = true, w[1:]
		}
		t.value = w
		if i := strings.IndexByte(w, ':'); i > 0 {
			if f, ok := filterPrefixes[w[:i]]; ok {
				t.field, t.value = f, w[i+1:]
			}
		}
		if t.field == fieldPort || t.field == fieldPID {
			if n, err := strconv.ParseInt(t.value, 10, 64); err == nil {
				t.num = n
			}
		}
		terms = append(terms, t)
	}
	return terms
}

// matchAll reports whether r passes every term.
func matchAll(terms []filterTerm, r *bindingRow) bool {
	for i := range terms {
		if terms[i].match(r) == terms[i].neg {
			return false
		}
	}
	return true
}

func (t *filterTerm) match(r *bindingRow) bool {
	if t.value == "" {
		return !t.neg // an empty value filters nothing, negated or not
	}
	switch t.field {
	case fieldPort:
		if t.num < 0 {
			return false
		}
		p := uint16(t.num)
		return t.num <= 0xffff && (r.b.Local.Port() == p || (r.b.Connected() && r.b.Remote.Port() == p))
	case fieldPID:
		return r.b.Owner != nil && int64(r.b.Owner.PID) == t.num
	case fieldProc:
		return strings.Contains(r.lowProc, t.value)
	case fieldUser:
		return strings.Contains(r.lowUser, t.value)
	case fieldHost:
		return strings.Contains(r.lowHost, t.value)
	case fieldProto:
		return strings.HasPrefix(r.cells[colProto], t.value)
	case fieldState:
		return strings.HasPrefix(r.cells[colState], t.value)
	case fieldAddr:
		return strings.Contains(r.cells[colLocal], t.value) || strings.Contains(r.cells[colRemote], t.value)
	}
	return strings.Contains(r.lowAll, t.value)
}
