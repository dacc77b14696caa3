package remote

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// WireVersion is the version of the documents /v1/bindings and
// /v1/history answer with (the bindings file version).
const WireVersion = tracker.FileVersion

// Limits of what the client decodes.
const (
	// maxSnapshot bounds a /v1/bindings answer.
	maxSnapshot = 512 << 20
	// maxEventLine bounds one line of /v1/events.
	maxEventLine = 1 << 20
)

// Binding is a binding on the wire: the object of the bindings file
// (tracker package documentation) plus the socket's inode, network
// namespace and whether it was inherited from its listener, which
// /v1/bindings and /v1/events add so that a client can tell sockets apart
// (bindings file readers ignore them).
type Binding struct {
	Proto      string  `json:"proto"`
	LocalIP    string  `json:"local_ip"`
	LocalPort  uint16  `json:"local_port"`
	RemoteIP   string  `json:"remote_ip"`
	RemotePort uint16  `json:"remote_port"`
	State      string  `json:"state"`
	PID        int32   `json:"pid"`
	StartTime  *string `json:"start_time"`
	Process    string  `json:"process"`
	Exe        string  `json:"exe"`
	Cmdline    string  `json:"cmdline"`
	UID        uint32  `json:"uid"`
	User       string  `json:"user"`
	Container  string  `json:"container"`
	From       *string `json:"from"`
	Until      *string `json:"until"`
	Inode      uint64  `json:"inode,omitempty"`
	NetNS      uint64  `json:"netns,omitempty"`
	Inherited  bool    `json:"inherited,omitempty"`
}

// Addr is an address interval on the wire.
type Addr struct {
	IP    string  `json:"ip"`
	From  *string `json:"from"`
	Until *string `json:"until"`
}

// Host is one host's part of a document.
type Host struct {
	Host      string    `json:"host"`
	Addresses []Addr    `json:"addresses"`
	Bindings  []Binding `json:"bindings"`
}

// Snapshot is the answer of GET /v1/bindings: a bindings file (version,
// hosts) with the sequence number of the last event it includes and the
// time of the scan it reflects.
type Snapshot struct {
	Version int     `json:"version"`
	Seq     uint64  `json:"seq"`
	Time    *string `json:"time"`
	Hosts   []Host  `json:"hosts"`
	// Denied lists the processes whose sockets the tracker could not see
	// (permission denied).
	Denied []int32 `json:"denied,omitempty"`
}

// Message types of the /v1/events stream.
const (
	MsgHello     = "hello"
	MsgEvent     = "event"
	MsgHeartbeat = "heartbeat"
	MsgResync    = "resync"
)

// Message is one line of the /v1/events stream.
type Message struct {
	// Type is MsgHello, MsgEvent, MsgHeartbeat or MsgResync.
	Type string `json:"type"`
	// Seq: for an event, its sequence number; for hello, the sequence
	// number the stream starts after; for heartbeat and resync, the last
	// sequence number the tracker issued.
	Seq uint64 `json:"seq"`
	// Time: the scan that produced the event, or when the message was
	// sent.
	Time *string `json:"time,omitempty"`
	// Host: the tracker's host (hello).
	Host string `json:"host,omitempty"`
	// Kind: "bound", "unbound" or "owner-changed" (event).
	Kind string `json:"kind,omitempty"`
	// Binding: the socket and owner the event is about (event).
	Binding *Binding `json:"binding,omitempty"`
	// Error: why the client must resync (resync).
	Error string `json:"error,omitempty"`
}

// errorBody is the JSON body of an error answer.
type errorBody struct {
	Error  string `json:"error"`
	Resync bool   `json:"resync,omitempty"`
}

// wireTime formats a time; nil for the zero time.
func wireTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// parseWireTime parses an RFC 3339 time (years 1900 to 2200, as the
// bindings file).
func parseWireTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	if y := t.Year(); y < 1900 || y > 2200 {
		return time.Time{}, fmt.Errorf("%q is out of range (years 1900 to 2200)", s)
	}
	return t.UTC(), nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return tracker.NormalizeAddr(a).String()
}

// FromBinding converts a tracker binding to its wire form.
func FromBinding(b *tracker.Binding) Binding {
	w := Binding{
		Proto:     b.Proto.String(),
		LocalIP:   addrString(b.Local.Addr()),
		LocalPort: b.Local.Port(),
		State:     b.State.String(),
		UID:       b.UID,
		From:      wireTime(b.From),
		Until:     wireTime(b.Until),
		Inode:     b.Inode,
		NetNS:     b.NetNS,
		Inherited: b.Inherited,
	}
	if b.Connected() {
		w.RemoteIP, w.RemotePort = addrString(b.Remote.Addr()), b.Remote.Port()
	}
	if p := b.Owner; p != nil {
		w.PID, w.StartTime = p.PID, wireTime(p.StartTime)
		w.Process, w.Exe, w.Cmdline = p.Name, p.Exe, p.Cmdline
		w.UID, w.User, w.Container = p.UID, p.User, p.Container
	}
	return w
}

// FieldError names the field of a wire object that is wrong.
type FieldError struct {
	Field string // e.g. "hosts[0].bindings[3].local_ip"
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path, field, format string, args ...any) error {
	if path != "" {
		field = path + "." + field
	}
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return tracker.NormalizeAddr(a), true
}

// Tracker converts a wire binding of host to a tracker binding; path
// prefixes the field names of errors.
func (w *Binding) Tracker(host, path string) (tracker.Binding, error) {
	b := tracker.Binding{Host: host, Inherited: w.Inherited}
	switch w.Proto {
	case "tcp":
		b.Proto = tracker.ProtoTCP
	case "udp":
		b.Proto = tracker.ProtoUDP
	default:
		return b, fieldErr(path, "proto", "%q is not tcp or udp", w.Proto)
	}
	lip, ok := parseIP(w.LocalIP)
	if !ok {
		return b, fieldErr(path, "local_ip", "%q is not an IP address", w.LocalIP)
	}
	b.Local = netip.AddrPortFrom(lip, w.LocalPort)
	if w.RemoteIP != "" {
		rip, ok := parseIP(w.RemoteIP)
		if !ok {
			return b, fieldErr(path, "remote_ip", "%q is not an IP address", w.RemoteIP)
		}
		b.Remote = netip.AddrPortFrom(rip, w.RemotePort)
		if !b.Connected() {
			b.Remote = netip.AddrPort{}
		}
	} else if w.RemotePort != 0 {
		return b, fieldErr(path, "remote_port", "%d without a remote_ip", w.RemotePort)
	}
	st, err := tracker.ParseState(w.State)
	if err != nil {
		return b, fieldErr(path, "state", "%q is not a socket state as ss(8) names them", w.State)
	}
	b.State, b.UID, b.Inode, b.NetNS = st, w.UID, w.Inode, w.NetNS
	if w.From == nil {
		return b, fieldErr(path, "from", "missing (want a time)")
	}
	if b.From, err = parseWireTime(*w.From); err != nil {
		return b, fieldErr(path, "from", "%w", err)
	}
	if w.Until != nil {
		if b.Until, err = parseWireTime(*w.Until); err != nil {
			return b, fieldErr(path, "until", "%w", err)
		}
		if b.Until.Before(b.From) {
			return b, fieldErr(path, "until", "%s is before from %s", *w.Until, *w.From)
		}
	}
	if w.PID < 0 {
		return b, fieldErr(path, "pid", "%d out of range", w.PID)
	}
	var start time.Time
	if w.StartTime != nil {
		if start, err = parseWireTime(*w.StartTime); err != nil {
			return b, fieldErr(path, "start_time", "%w", err)
		}
	}
	if w.PID != 0 || w.Process != "" || w.Exe != "" || w.Cmdline != "" || !start.IsZero() {
		b.Owner = &tracker.Process{PID: w.PID, StartTime: start, Name: w.Process, Comm: w.Process,
			Exe: w.Exe, Cmdline: w.Cmdline, UID: w.UID, User: w.User, Container: w.Container}
	}
	return b, nil
}

// FromAddr converts an address interval to its wire form.
func FromAddr(a *tracker.AddrInterval) Addr {
	return Addr{IP: addrString(a.Addr), From: wireTime(a.From), Until: wireTime(a.Until)}
}

// Tracker converts a wire address interval; path prefixes the field
// names of errors.
func (w *Addr) Tracker(path string) (tracker.AddrInterval, error) {
	var a tracker.AddrInterval
	ip, ok := parseIP(w.IP)
	if !ok {
		return a, fieldErr(path, "ip", "%q is not an IP address", w.IP)
	}
	a.Addr = ip
	if w.From == nil {
		return a, fieldErr(path, "from", "missing (want a time)")
	}
	var err error
	if a.From, err = parseWireTime(*w.From); err != nil {
		return a, fieldErr(path, "from", "%w", err)
	}
	if w.Until != nil {
		if a.Until, err = parseWireTime(*w.Until); err != nil {
			return a, fieldErr(path, "until", "%w", err)
		}
		if a.Until.Before(a.From) {
			return a, fieldErr(path, "until", "%s is before from %s", *w.Until, *w.From)
		}
	}
	return a, nil
}

// FromView converts a tracker's current view to a snapshot.
func FromView(v *tracker.View) *Snapshot {
	h := Host{Host: v.Host, Addresses: make([]Addr, len(v.Addrs)), Bindings: make([]Binding, len(v.Bindings))}
	for i := range v.Addrs {
		h.Addresses[i] = FromAddr(&v.Addrs[i])
	}
	for i := range v.Bindings {
		h.Bindings[i] = FromBinding(&v.Bindings[i])
	}
	return &Snapshot{Version: WireVersion, Seq: v.Seq, Time: wireTime(v.Time), Hosts: []Host{h}, Denied: v.Denied}
}

// View converts a snapshot to a tracker view. A snapshot holds one host.
func (s *Snapshot) View() (*tracker.View, error) {
	if s.Version != WireVersion {
		return nil, fieldErr("", "version", "version %d not supported (this netdumper reads version %d)", s.Version, WireVersion)
	}
	if len(s.Hosts) != 1 {
		return nil, fieldErr("", "hosts", "%d hosts, want 1", len(s.Hosts))
	}
	h := &s.Hosts[0]
	if h.Host == "" {
		return nil, fieldErr("hosts[0]", "host", "missing")
	}
	v := &tracker.View{Seq: s.Seq, Denied: s.Denied}
	v.Host = h.Host
	if s.Time != nil {
		t, err := parseWireTime(*s.Time)
		if err != nil {
			return nil, fieldErr("", "time", "%w", err)
		}
		v.Time = t
	}
	v.Addrs = make([]tracker.AddrInterval, 0, len(h.Addresses))
	for i := range h.Addresses {
		a, err := h.Addresses[i].Tracker(fmt.Sprintf("hosts[0].addresses[%d]", i))
		if err != nil {
			return nil, err
		}
		v.Addrs = append(v.Addrs, a)
	}
	v.Bindings = make([]tracker.Binding, 0, len(h.Bindings))
	for i := range h.Bindings {
		b, err := h.Bindings[i].Tracker(h.Host, fmt.Sprintf("hosts[0].bindings[%d]", i))
		if err != nil {
			return nil, err
		}
		v.Bindings = append(v.Bindings, b)
	}
	return v, nil
}

// EventMessage converts a tracker event to its wire message.
func EventMessage(e *tracker.Event) Message {
	b := FromBinding(&e.Binding)
	return Message{Type: MsgEvent, Seq: e.Seq, Time: wireTime(e.Time), Kind: e.Kind.String(), Binding: &b}
}

// Event converts an event message of host's stream to a tracker event.
func (m *Message) Event(host string) (tracker.Event, error) {
	var e tracker.Event
	if m.Type != MsgEvent {
		return e, fieldErr("", "type", "%q is not an event", m.Type)
	}
	e.Seq = m.Seq
	switch m.Kind {
	case "bound":
		e.Kind = tracker.EventBound
	case "unbound":
		e.Kind = tracker.EventUnbound
	case "owner-changed":
		e.Kind = tracker.EventOwnerChanged
	default:
		return e, fieldErr("", "kind", "%q is not bound, unbound or owner-changed", m.Kind)
	}
	if m.Time != nil {
		t, err := parseWireTime(*m.Time)
		if err != nil {
			return e, fieldErr("", "time", "%w", err)
		}
		e.Time = t
	}
	if m.Binding == nil {
		return e, fieldErr("", "binding", "missing")
	}
	b, err := m.Binding.Tracker(host, "binding")
	if err != nil {
		return e, err
	}
	e.Binding = b
	return e, nil
}

// writeSnapshot writes s in the bindings file layout, one address or
// binding per line.
func writeSnapshot(w io.Writer, s *Snapshot) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	put := func(v any) error {
		buf.Reset()
		if err := enc.Encode(v); err != nil {
			return err
		}
		_, err := bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		return err
	}
	fmt.Fprintf(bw, "{\"version\": %d,\n \"seq\": %d,\n \"time\": ", s.Version, s.Seq)
	if err := put(s.Time); err != nil {
		return err
	}
	if len(s.Denied) > 0 {
		bw.WriteString(",\n \"denied\": ")
		if err := put(s.Denied); err != nil {
			return err
		}
	}
	bw.WriteString(",\n \"hosts\": [")
	for i := range s.Hosts {
		h := &s.Hosts[i]
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n  {\"host\": ")
		if err := put(h.Host); err != nil {
			return err
		}
		bw.WriteString(",\n   \"addresses\": [")
		for j := range h.Addresses {
			if j > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("\n    ")
			if err := put(&h.Addresses[j]); err != nil {
				return err
			}
		}
		if len(h.Addresses) > 0 {
			bw.WriteString("\n   ")
		}
		bw.WriteString("],\n   \"bindings\": [")
		for j := range h.Bindings {
			if j > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("\n    ")
			if err := put(&h.Bindings[j]); err != nil {
				return err
			}
		}
		if len(h.Bindings) > 0 {
			bw.WriteString("\n   ")
		}
		bw.WriteString("]}")
	}
	if len(s.Hosts) > 0 {
		bw.WriteString("\n ")
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// DecodeSnapshot reads a /v1/bindings document (at most 512 MiB) and
// converts it to a view; errors name the field at fault.
func DecodeSnapshot(r io.Reader) (*tracker.View, error) {
	lr := &io.LimitedReader{R: r, N: maxSnapshot + 1}
	dec := json.NewDecoder(lr)
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("bindings document larger than %d bytes", maxSnapshot)
		}
		return nil, fmt.Errorf("bindings document: %w", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("bindings document: data after the end of the document")
	}
	v, err := s.View()
	if err != nil {
		return nil, fmt.Errorf("bindings document: %w", err)
	}
	return v, nil
}

// describeJSONError names the field of a type error.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &FieldError{Field: te.Field, Err: fmt.Errorf("want %s", te.Type)}
	}
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeMessage parses one line of the events stream.
func decodeMessage(line []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("event stream: %w", describeJSONError(err))
	}
	switch m.Type {
	case MsgHello, MsgEvent, MsgHeartbeat, MsgResync:
	default:
		return m, fmt.Errorf("event stream: %w", fieldErr("", "type", "unknown message type %q", m.Type))
	}
	return m, nil
}
