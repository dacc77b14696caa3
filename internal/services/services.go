// Package services maps well-known ports to service names, the way
// /etc/services does, for labels of flows no process could be found for
// (the C original wrote "domain***", "https***" ...).
package services

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Protocol numbers the table knows.
const (
	protoTCP = 6
	protoUDP = 17
)

// Table maps (protocol, port) to a service name.
type Table struct {
	names map[key]string
}

type key struct {
	proto uint8
	port  uint16
}

// Name returns the service name of port for protocol proto (6 TCP, 17 UDP;
// SCTP/DCCP entries are not kept), and whether there is one.
func (t *Table) Name(proto uint8, port uint16) (string, bool) {
	if t == nil {
		return "", false
	}
	n, ok := t.names[key{proto, port}]
	return n, ok
}

// IP protocol numbers of ICMP and ICMPv6.
const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// Len returns the number of entries.
func (t *Table) Len() int { return len(t.names) }

// ForFlow returns the service name of a flow: the name of whichever of its
// two ports the table knows, preferring the lower port when both are
// known (the server side of most conversations), or "" when neither is.
// ICMP flows, which have no ports, are "icmp" (IPv4) and "icmp6".
func (t *Table) ForFlow(proto uint8, srcPort, dstPort uint16) string {
	switch proto {
	case protoICMP:
		return "icmp"
	case protoICMPv6:
		return "icmp6"
	}
	a, b := srcPort, dstPort
	if b < a {
		a, b = b, a
	}
	if n, ok := t.Name(proto, a); ok {
		return n
	}
	n, _ := t.Name(proto, b)
	return n
}

// Parse reads a services(5) file: "name port/proto [aliases...] [# comment]".
// Malformed lines are reported with their line number.
func Parse(r io.Reader, name string) (*Table, error) {
	t := &Table{names: make(map[key]string)}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		f := strings.Fields(s)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want \"name port/proto\", got %q", name, line, sc.Text())
		}
		portS, protoS, ok := strings.Cut(f[1], "/")
		port, err := strconv.ParseUint(portS, 10, 16)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s:%d: bad port/proto %q", name, line, f[1])
		}
		var p uint8
		switch protoS {
		case "tcp":
			p = protoTCP
		case "udp":
			p = protoUDP
		default:
			continue
		}
		k := key{p, uint16(port)}
		if _, dup := t.names[k]; !dup {
			t.names[k] = f[0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Load reads path (usually /etc/services). When the file does not exist it
// returns the built-in table, so a minimal system still gets names.
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return Builtin(), nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

// Builtin returns the table built into the binary: the common well-known
// services of IANA's registry, for systems without /etc/services.
func Builtin() *Table {
	t, err := Parse(strings.NewReader(builtin), "builtin")
	if err != nil {
		panic(err) // the embedded table is checked by a test
	}
	return t
}
