package remote

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

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
// (tracker.FileBinding) plus the socket's inode, network namespace and
// whether it was inherited from its listener, which /v1/bindings and
// /v1/events add so that a client can tell sockets apart (bindings file
// readers ignore them).
type Binding struct {
	tracker.FileBinding
	Inode     uint64 `json:"inode,omitempty"`
	NetNS     uint64 `json:"netns,omitempty"`
	Inherited bool   `json:"inherited,omitempty"`
}

// Addr is an address interval on the wire, as in a bindings file.
type Addr = tracker.FileAddr

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

// FromBinding converts a tracker binding to its wire form.
func FromBinding(b *tracker.Binding) Binding {
	return Binding{FileBinding: tracker.NewFileBinding(b), Inode: b.Inode, NetNS: b.NetNS, Inherited: b.Inherited}
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

// inPath puts the field of a *tracker.FieldError under path.
func inPath(path string, err error) error {
	var fe *tracker.FieldError
	if errors.As(err, &fe) {
		return fieldErr(path, fe.Field, "%w", fe.Err)
	}
	return err
}

// Tracker converts a wire binding of host to a tracker binding, with the
// checks of a bindings file; path prefixes the field names of errors.
func (w *Binding) Tracker(host, path string) (tracker.Binding, error) {
	b, err := w.FileBinding.Binding()
	if err != nil {
		return b, inPath(path, err)
	}
	b.Host, b.Inherited, b.Inode, b.NetNS = host, w.Inherited, w.Inode, w.NetNS
	if b.Owner != nil {
		b.Owner.Comm = b.Owner.Name
	}
	return b, nil
}

// FromAddr converts an address interval to its wire form.
func FromAddr(a *tracker.AddrInterval) Addr { return tracker.NewFileAddr(a) }

// addrInterval converts a wire address interval; path prefixes the field
// names of errors.
func addrInterval(w *Addr, path string) (tracker.AddrInterval, error) {
	a, err := w.Interval()
	return a, inPath(path, err)
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
	return &Snapshot{Version: WireVersion, Seq: v.Seq, Time: tracker.FileTime(v.Time), Hosts: []Host{h}, Denied: v.Denied}
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
		t, err := tracker.ParseFileTime(*s.Time)
		if err != nil {
			return nil, fieldErr("", "time", "%w", err)
		}
		v.Time = t
	}
	v.Addrs = make([]tracker.AddrInterval, 0, len(h.Addresses))
	for i := range h.Addresses {
		a, err := addrInterval(&h.Addresses[i], fmt.Sprintf("hosts[0].addresses[%d]", i))
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
	return Message{Type: MsgEvent, Seq: e.Seq, Time: tracker.FileTime(e.Time), Kind: e.Kind.String(), Binding: &b}
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
		t, err := tracker.ParseFileTime(*m.Time)
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
		// encoding/json names the embedded struct in the path; the
		// document has no such level.
		field := strings.ReplaceAll(te.Field, "FileBinding.", "")
		return &FieldError{Field: field, Err: fmt.Errorf("want %s", te.Type)}
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
