package tracker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FileVersion is the version of the bindings file format this package
// writes and reads.
const FileVersion = 1

// maxFileObject bounds one JSON value of a bindings file (one binding,
// one address), so that a malformed file cannot make the reader buffer
// without limit.
const maxFileObject = 16 << 20

// HostHistory is one host's part of a bindings file: its addresses and
// binding intervals.
type HostHistory struct {
	Host     string
	Addrs    []AddrInterval
	Bindings []Binding
}

// File is a decoded bindings file.
type File struct {
	Version int
	Hosts   []HostHistory
}

// FileError locates what is wrong in a bindings file.
type FileError struct {
	Name string // file name as given to the reader ("" prints "bindings")
	Line int    // 1-based
	Path string // JSON path, e.g. hosts[0].bindings[3].local_port
	Err  error
}

func (e *FileError) Error() string {
	name := e.Name
	if name == "" {
		name = "bindings"
	}
	if e.Path == "" {
		return fmt.Sprintf("%s:%d: %v", name, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", name, e.Line, e.Path, e.Err)
}

// Unwrap returns ErrBadFile and the cause.
func (e *FileError) Unwrap() []error { return []error{ErrBadFile, e.Err} }

// ErrBadFile is matched (errors.Is) by every FileError.
var ErrBadFile = errors.New("malformed bindings file")

// badf returns the cause of a FileError.
func badf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// FileTime formats a time as bindings files (and the remote API) write
// times: RFC 3339 in UTC, nil for the zero time.
func FileTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// FileAddr is an address interval as bindings files write it; the remote
// API's documents carry the same objects. The field order is the order
// written.
type FileAddr struct {
	IP    string  `json:"ip"`
	From  *string `json:"from"`
	Until *string `json:"until"`
}

// FileBinding is a binding as bindings files write it, owner included;
// the remote API's documents carry the same objects with a few more
// fields. The field order is the order written.
type FileBinding struct {
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
}

// NewFileAddr returns a as a bindings file writes it.
func NewFileAddr(a *AddrInterval) FileAddr {
	return FileAddr{IP: addrString(a.Addr), From: FileTime(a.From), Until: FileTime(a.Until)}
}

// Interval checks fa and converts it; an error is a *FieldError naming
// the field at fault.
func (fa *FileAddr) Interval() (AddrInterval, error) {
	a, fe := addrFrom(fa)
	if fe != nil {
		return a, fe
	}
	return a, nil
}

// NewFileBinding returns b as a bindings file writes it.
func NewFileBinding(b *Binding) FileBinding {
	fb := FileBinding{
		Proto:     b.Proto.String(),
		LocalIP:   addrString(b.Local.Addr()),
		LocalPort: b.Local.Port(),
		State:     b.State.String(),
		UID:       b.UID,
		From:      FileTime(b.From),
		Until:     FileTime(b.Until),
	}
	if b.Connected() {
		fb.RemoteIP, fb.RemotePort = addrString(b.Remote.Addr()), b.Remote.Port()
	}
	if p := b.Owner; p != nil {
		fb.PID, fb.StartTime = p.PID, FileTime(p.StartTime)
		fb.Process, fb.Exe, fb.Cmdline = p.Name, p.Exe, p.Cmdline
		fb.UID, fb.User, fb.Container = p.UID, p.User, p.Container
	}
	return fb
}

// Binding checks fb and converts it, with the checks of a bindings file's
// reader; Host is left empty, and each owner is a Process of its own. An
// error is a *FieldError naming the field at fault.
func (fb *FileBinding) Binding() (Binding, error) {
	port := int64(fb.LocalPort)
	in := fileBindingIn{Proto: &fb.Proto, LocalIP: &fb.LocalIP, LocalPort: &port, RemoteIP: fb.RemoteIP,
		RemotePort: int64(fb.RemotePort), State: &fb.State, PID: int64(fb.PID), StartTime: fb.StartTime,
		Process: fb.Process, Exe: fb.Exe, Cmdline: fb.Cmdline, UID: int64(fb.UID), User: fb.User,
		Container: fb.Container, From: fb.From, Until: fb.Until}
	var d fileDecoder // no procs: nothing to share
	b, fe := d.bindingFrom(&in)
	if fe != nil {
		return b, fe
	}
	return b, nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return NormalizeAddr(a).String()
}

// FileWriter writes a bindings file as a stream: StartHost, then that
// host's bindings, for each host, then Close. The layout puts one address
// or binding per line:
//
//	{"version": 1,
//	 "hosts": [
//	  {"host": "web1",
//	   "addresses": [
//	    {"ip": "192.0.2.10", "from": "2023-11-14T22:00:00Z", "until": null}
//	   ],
//	   "bindings": [
//	    {"proto": "tcp", "local_ip": "0.0.0.0", "local_port": 22, ...},
//	    ...
//	   ]}
//	 ]}
type FileWriter struct {
	w        *bufio.Writer
	hosts    int
	bindings int // of the current host
	started  bool
	closed   bool
	err      error
	buf      bytes.Buffer
	enc      *json.Encoder
}

// NewFileWriter returns a writer of a bindings file to w.
func NewFileWriter(w io.Writer) *FileWriter {
	fw := &FileWriter{w: bufio.NewWriterSize(w, 64<<10)}
	fw.enc = json.NewEncoder(&fw.buf)
	fw.enc.SetEscapeHTML(false)
	return fw
}

func (fw *FileWriter) write(s string) {
	if fw.err == nil {
		_, fw.err = fw.w.WriteString(s)
	}
}

// object writes v as one line of compact JSON with ", " and ": "
// separators, as the format's documentation shows it.
func (fw *FileWriter) object(v any) {
	if fw.err != nil {
		return
	}
	fw.buf.Reset()
	if fw.err = fw.enc.Encode(v); fw.err != nil {
		return
	}
	b := bytes.TrimSuffix(fw.buf.Bytes(), []byte("\n"))
	// Spacing after separators outside strings, for readability.
	inStr, esc := false, false
	for _, c := range b {
		if fw.err = fw.w.WriteByte(c); fw.err != nil {
			return
		}
		switch {
		case esc:
			esc = false
		case c == '\\' && inStr:
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ',' || c == ':'):
			fw.err = fw.w.WriteByte(' ')
		}
	}
}

func (fw *FileWriter) header() {
	if !fw.started {
		fw.started = true
		fw.write(`{"version": 1,` + "\n" + ` "hosts": [`)
	}
}

func (fw *FileWriter) endHost() {
	if fw.hosts == 0 {
		return
	}
	if fw.bindings > 0 {
		fw.write("\n   ]}")
	} else {
		fw.write("]}")
	}
}

// StartHost begins the part of host, with its address intervals.
func (fw *FileWriter) StartHost(host string, addrs []AddrInterval) error {
	if fw.closed {
		return errors.New("bindings file: write after close")
	}
	fw.header()
	fw.endHost()
	if fw.hosts > 0 {
		fw.write(",")
	}
	fw.hosts++
	fw.bindings = 0
	fw.write("\n  {\"host\": ")
	fw.object(host)
	fw.write(",\n   \"addresses\": [")
	for i := range addrs {
		if i > 0 {
			fw.write(",")
		}
		fw.write("\n    ")
		fw.object(NewFileAddr(&addrs[i]))
	}
	if len(addrs) > 0 {
		fw.write("\n   ")
	}
	fw.write("],\n   \"bindings\": [")
	return fw.err
}

// WriteBinding adds a binding interval to the current host.
func (fw *FileWriter) WriteBinding(b *Binding) error {
	if fw.hosts == 0 || fw.closed {
		return errors.New("bindings file: binding outside a host")
	}
	if fw.bindings > 0 {
		fw.write(",")
	}
	fw.bindings++
	fw.write("\n    ")
	fw.object(NewFileBinding(b))
	return fw.err
}

// Close ends the file and flushes it (it does not close the underlying
// writer).
func (fw *FileWriter) Close() error {
	if fw.closed {
		return fw.err
	}
	fw.closed = true
	fw.header()
	fw.endHost()
	if fw.hosts > 0 {
		fw.write("\n ]}\n")
	} else {
		fw.write("]}\n")
	}
	if fw.err == nil {
		fw.err = fw.w.Flush()
	}
	if fw.err != nil {
		return fmt.Errorf("write bindings file: %w", fw.err)
	}
	return nil
}

// WriteFile writes hosts as a bindings file.
func WriteFile(w io.Writer, hosts []HostHistory) error {
	fw := NewFileWriter(w)
	for i := range hosts {
		h := &hosts[i]
		if err := fw.StartHost(h.Host, h.Addrs); err != nil {
			return fmt.Errorf("write bindings file: %w", err)
		}
		for j := range h.Bindings {
			if err := fw.WriteBinding(&h.Bindings[j]); err != nil {
				return fmt.Errorf("write bindings file: %w", err)
			}
		}
	}
	return fw.Close()
}

// ReadFile decodes a whole bindings file; name (the file name) only
// labels errors, which are *FileError values naming the line and field
// at fault. Owners with identical details share one *Process.
func ReadFile(r io.Reader, name string) (*File, error) {
	// A file of up to maxFileObject bytes is read whole and tried on the
	// fast path first; the full decoder's limits cannot bite on it, so
	// both accept the same files.
	size := int64(64 << 10)
	if st, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
			size = min(fi.Size(), maxFileObject) + 1
		}
	}
	head, err := readUpTo(r, size, maxFileObject+1)
	if err != nil {
		return nil, readErr(name, err)
	}
	if len(head) <= maxFileObject {
		if f, ok := readFileFast(head); ok {
			return f, nil
		}
	}
	return readFileFull(io.MultiReader(bytes.NewReader(head), r), name)
}

// readUpTo reads r to its end or to limit bytes, into a buffer first
// sized for size bytes.
func readUpTo(r io.Reader, size, limit int64) ([]byte, error) {
	b := make([]byte, 0, size)
	for int64(len(b)) < limit {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b)) // doubling: few copies
		}
		n, err := r.Read(b[len(b):min(int64(cap(b)), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// hostSet finds the hosts of a File by name, adding a new one at the end:
// a file may list a host in several parts, which are merged.
type hostSet struct {
	f   *File
	idx map[string]int
}

func (s *hostSet) get(name string) *HostHistory {
	i, ok := s.idx[name]
	if !ok {
		i = len(s.f.Hosts)
		s.idx[name] = i
		s.f.Hosts = append(s.f.Hosts, HostHistory{Host: name})
	}
	return &s.f.Hosts[i]
}

// readFileFull is ReadFile by the full decoder.
func readFileFull(r io.Reader, name string) (*File, error) {
	f := &File{Version: FileVersion}
	hosts := hostSet{f: f, idx: make(map[string]int)}
	err := DecodeFile(r, name, func(host string, a *AddrInterval, b *Binding) error {
		h := hosts.get(host)
		if a != nil {
			h.Addrs = append(h.Addrs, *a)
		}
		if b != nil {
			h.Bindings = append(h.Bindings, *b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// DecodeFile streams a bindings file: fn is called once per host with a
// and b nil when its name is known, then with each of its address
// intervals (a) or bindings (b, whose Host is set), in file order, so a
// large file never sits in memory whole. An error of fn stops the
// decoding and is returned as is; malformed input gives a *FileError.
func DecodeFile(r io.Reader, name string, fn func(host string, a *AddrInterval, b *Binding) error) error {
	d := &fileDecoder{name: name, fn: fn, procs: make(map[fileOwner]*Process)}
	d.cr = &lineReader{r: r}
	d.dec = json.NewDecoder(d.cr)
	return d.decode()
}

// lineReader keeps what the JSON decoder read but has not consumed yet,
// and counts the lines before it, so that any offset the decoder reports
// maps to a line and a syntax error can be located by scanning again.
type lineReader struct {
	r        io.Reader
	read     int64  // bytes read so far
	keep     []byte // bytes from keepBase to read
	keepBase int64
	lines    int   // newlines before keepBase
	limit    int64 // read may run this far ahead of keepBase
}

func (lr *lineReader) Read(p []byte) (int, error) {
	if lr.limit > 0 && lr.read-lr.keepBase > lr.limit {
		return 0, errTooLarge
	}
	n, err := lr.r.Read(p)
	lr.keep = append(lr.keep, p[:n]...)
	lr.read += int64(n)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

var errTooLarge = fmt.Errorf("a value larger than %d bytes", maxFileObject)

// line returns the line of byte offset off (offsets before what is kept
// map to the first kept line).
func (lr *lineReader) line(off int64) int {
	i := min(max(off-lr.keepBase, 0), int64(len(lr.keep)))
	return 1 + lr.lines + bytes.Count(lr.keep[:i], []byte{'\n'})
}

// kept returns the bytes from offset off on.
func (lr *lineReader) kept(off int64) []byte {
	i := min(max(off-lr.keepBase, 0), int64(len(lr.keep)))
	return lr.keep[i:]
}

// forget drops the bytes before off: the decoder has consumed them.
func (lr *lineReader) forget(off int64) {
	n := off - lr.keepBase
	if n <= 0 || n > int64(len(lr.keep)) {
		return
	}
	lr.lines += bytes.Count(lr.keep[:n], []byte{'\n'})
	lr.keepBase = off
	if n > int64(cap(lr.keep)/2) {
		lr.keep = append(lr.keep[:0], lr.keep[n:]...)
	} else {
		lr.keep = lr.keep[n:]
	}
}

// fileOwner is the owner part of a file binding, to share *Process values.
type fileOwner struct {
	pid                                 int32
	start                               int64
	uid                                 uint32
	process, exe, cmdline, user, contnr string
}

type fileDecoder struct {
	name    string
	fn      func(string, *AddrInterval, *Binding) error
	cr      *lineReader
	dec     *json.Decoder
	procs   map[fileOwner]*Process
	version int
	fnErr   error
}

// errAt returns a FileError at byte offset off.
func (d *fileDecoder) errAt(off int64, path string, err error) error {
	return &FileError{Name: d.name, Line: d.cr.line(off), Path: path, Err: err}
}

// readErr names the file in a read error, unless the error (an
// *fs.PathError from reading an *os.File) already does.
func readErr(name string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("read %s: %w", name, err)
}

// wrapDecodeErr locates an error of the JSON decoder, which began
// reading at offset from.
func (d *fileDecoder) wrapDecodeErr(err error, path string, from int64) error {
	if d.fnErr != nil {
		return d.fnErr
	}
	var rerr *readError
	if errors.As(err, &rerr) {
		return readErr(d.name, rerr.err)
	}
	if errors.Is(err, errTooLarge) {
		return d.errAt(d.dec.InputOffset(), path, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.errAt(d.cr.read, path, errors.New("unexpected end of file"))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// The decoder's offsets are not file offsets once tokens and
		// values mix: scan the value again on its own.
		return d.errAt(d.syntaxOffset(from), "", errors.New(se.Error()))
	}
	return d.errAt(d.dec.InputOffset(), path, err)
}

// syntaxOffset finds the first syntax error in what follows offset from:
// after blanks and one separator, a value that does not scan.
func (d *fileDecoder) syntaxOffset(from int64) int64 {
	b := d.cr.kept(from)
	i := skipBlanks(b, 0)
	if i < len(b) && (b[i] == ',' || b[i] == ':') {
		i = skipBlanks(b, i+1)
	}
	var raw json.RawMessage
	var se *json.SyntaxError
	if err := json.Unmarshal(b[i:], &raw); errors.As(err, &se) && !strings.Contains(se.Error(), "after top-level value") {
		return from + int64(i) + se.Offset - 1
	}
	return from + int64(i)
}

func skipBlanks(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// token reads the next token, which must be the delimiter want.
func (d *fileDecoder) delim(want json.Delim, path string) error {
	off := d.dec.InputOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return d.wrapDecodeErr(err, path, off)
	}
	if got, ok := tok.(json.Delim); !ok || got != want {
		off += int64(skipBlanks(d.cr.kept(off), 0))
		what := "an object"
		if want == '[' {
			what = "an array"
		}
		return d.errAt(off, path, badf("want %s, got %s", what, tokenString(tok)))
	}
	return nil
}

func tokenString(tok any) string {
	switch v := tok.(type) {
	case json.Delim:
		return string(v)
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// key reads an object key, or reports the end of the object.
func (d *fileDecoder) key(path string) (string, bool, error) {
	off := d.dec.InputOffset()
	if !d.dec.More() {
		if _, err := d.dec.Token(); err != nil { // the '}'
			return "", false, d.wrapDecodeErr(err, path, off)
		}
		return "", false, nil
	}
	tok, err := d.dec.Token()
	if err != nil {
		return "", false, d.wrapDecodeErr(err, path, off)
	}
	k, _ := tok.(string)
	return k, true, nil
}

// raw reads one value as raw JSON.
func (d *fileDecoder) raw(path string) (json.RawMessage, int64, error) {
	start := d.dec.InputOffset()
	d.cr.forget(start)
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return nil, 0, d.wrapDecodeErr(err, path, start)
	}
	end := d.dec.InputOffset()
	return raw, end - int64(len(raw)), nil
}

func (d *fileDecoder) decode() error {
	d.cr.limit = maxFileObject
	if err := d.delim('{', ""); err != nil {
		return err
	}
	sawVersion, sawHosts := false, false
	for {
		k, ok, err := d.key("")
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch k {
		case "version":
			raw, off, err := d.raw("version")
			if err != nil {
				return err
			}
			v, perr := strconv.Atoi(string(raw))
			if perr != nil {
				return d.errAt(off, "version", badf("%s is not a version number", raw))
			}
			if v != FileVersion {
				return d.errAt(off, "version", badf("version %d not supported (this netdumper reads version %d)", v, FileVersion))
			}
			sawVersion, d.version = true, v
		case "hosts":
			sawHosts = true
			if err := d.hosts(); err != nil {
				return err
			}
		default:
			if _, _, err := d.raw(k); err != nil { // unknown keys are skipped
				return err
			}
		}
	}
	end := d.dec.InputOffset()
	if !sawVersion {
		return d.errAt(end, "version", badf("missing"))
	}
	if !sawHosts {
		return d.errAt(end, "hosts", badf("missing"))
	}
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		off := end + int64(skipBlanks(d.cr.kept(end), 0))
		return d.errAt(off, "", badf("data after the end of the file's object"))
	}
	return nil
}

func (d *fileDecoder) hosts() error {
	if err := d.delim('[', "hosts"); err != nil {
		return err
	}
	for i := 0; d.dec.More(); i++ {
		if err := d.host(i); err != nil {
			return err
		}
	}
	return d.delim(']', "hosts")
}

// host decodes one host object. Its name may come after its addresses
// and bindings; they wait for it then.
func (d *fileDecoder) host(i int) error {
	path := fmt.Sprintf("hosts[%d]", i)
	if err := d.delim('{', path); err != nil {
		return err
	}
	host, named := "", false
	var waitAddrs []AddrInterval
	var waitBindings []Binding
	emit := func(a *AddrInterval, b *Binding) error {
		if b != nil {
			b.Host = host
		}
		if !named {
			if a != nil {
				waitAddrs = append(waitAddrs, *a)
			}
			if b != nil {
				waitBindings = append(waitBindings, *b)
			}
			return nil
		}
		if err := d.fn(host, a, b); err != nil {
			d.fnErr = err
			return err
		}
		return nil
	}
	for {
		k, ok, err := d.key(path)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch k {
		case "host":
			raw, off, err := d.raw(path + ".host")
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &host); err != nil || host == "" {
				return d.errAt(off, path+".host", badf("want a non-empty string, got %s", raw))
			}
			named = true
			if err := emit(nil, nil); err != nil { // the host starts
				return err
			}
			for j := range waitAddrs {
				if err := emit(&waitAddrs[j], nil); err != nil {
					return err
				}
			}
			for j := range waitBindings {
				if err := emit(nil, &waitBindings[j]); err != nil {
					return err
				}
			}
			waitAddrs, waitBindings = nil, nil
		case "addresses", "bindings":
			p := path + "." + k
			if err := d.delim('[', p); err != nil {
				return err
			}
			for j := 0; d.dec.More(); j++ {
				ep := fmt.Sprintf("%s[%d]", p, j)
				raw, off, err := d.raw(ep)
				if err != nil {
					return err
				}
				if k == "addresses" {
					a, err := d.addr(raw, off, ep)
					if err != nil {
						return err
					}
					if err := emit(&a, nil); err != nil {
						return err
					}
					continue
				}
				b, err := d.binding(raw, off, ep)
				if err != nil {
					return err
				}
				if err := emit(nil, &b); err != nil {
					return err
				}
			}
			if err := d.delim(']', p); err != nil {
				return err
			}
		default:
			if _, _, err := d.raw(path + "." + k); err != nil {
				return err
			}
		}
	}
	if !named {
		return d.errAt(d.dec.InputOffset(), path+".host", badf("missing"))
	}
	return nil
}

// fieldOffset returns the offset of key's value in the object raw (or of
// the object itself when key is absent).
func fieldOffset(raw []byte, key string) int64 {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return 0
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0
		}
		off := dec.InputOffset()
		if k, _ := tok.(string); k == key {
			return off
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return 0
		}
	}
	return 0
}

// fieldErr reports a bad field of the object raw at offset off.
func (d *fileDecoder) fieldErr(raw []byte, off int64, path, field string, err error) error {
	return d.errAt(off+fieldOffset(raw, field), path+"."+field, err)
}

// unmarshalObject decodes raw into v, locating type errors.
func (d *fileDecoder) unmarshalObject(raw []byte, off int64, path string, v any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return d.errAt(off, path, badf("want an object, got %.40s", raw))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if i := strings.LastIndexByte(field, '.'); i >= 0 {
				field = field[i+1:]
			}
			return d.fieldErr(raw, off, path, field, badf("%s: want %s", valueText(raw, field), kindName(te.Type.Kind().String())))
		}
		return d.errAt(off, path, err)
	}
	return nil
}

// valueText returns the raw JSON of field in raw, shortened.
func valueText(raw []byte, field string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	s := string(m[field])
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

func kindName(k string) string {
	switch {
	case strings.Contains(k, "int"):
		return "an integer"
	case k == "ptr", k == "string":
		return "a string"
	}
	return k
}

// ParseFileTime parses an RFC 3339 time of a bindings file (or of the
// remote API); years outside 1900 to 2200 are refused.
func ParseFileTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badf("%q is not an RFC 3339 time", s)
	}
	// The range is of the UTC year, the one written back: in its own
	// offset 2200-12-31T23:30:00-01:00 is in range, but it is written as
	// 2201-01-01T00:30:00Z, which would then be refused.
	t = t.UTC()
	if y := t.Year(); y < 1900 || y > 2200 {
		return time.Time{}, badf("%q is out of range (years 1900 to 2200 UTC)", s)
	}
	return t, nil
}

// FieldError is what is wrong with one field of an address or binding
// object. The bindings file reader locates the field in the file and
// returns a FileError.
type FieldError struct {
	Field string // the object's key, e.g. "local_ip"
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func badField(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: badf(format, args...)}
}

// locate turns fe into a FileError at its field of the object raw, which
// starts at offset off.
func (d *fileDecoder) locate(fe *FieldError, raw []byte, off int64, path string) error {
	return d.fieldErr(raw, off, path, fe.Field, fe.Err)
}

// interval parses from (required) and until (null: open).
func interval(from, until *string) (time.Time, time.Time, *FieldError) {
	if from == nil {
		return time.Time{}, time.Time{}, badField("from", "missing (want a time)")
	}
	f, err := ParseFileTime(*from)
	if err != nil {
		return f, time.Time{}, &FieldError{"from", err}
	}
	if until == nil {
		return f, time.Time{}, nil
	}
	u, err := ParseFileTime(*until)
	if err != nil {
		return f, u, &FieldError{"until", err}
	}
	if u.Before(f) {
		return f, u, badField("until", "%s is before from %s", *until, *from)
	}
	return f, u, nil
}

func (d *fileDecoder) addr(raw []byte, off int64, path string) (AddrInterval, error) {
	var fa FileAddr
	if err := d.unmarshalObject(raw, off, path, &fa); err != nil {
		return AddrInterval{}, err
	}
	a, fe := addrFrom(&fa)
	if fe != nil {
		return a, d.locate(fe, raw, off, path)
	}
	return a, nil
}

// addrFrom checks and converts a decoded address object.
func addrFrom(fa *FileAddr) (AddrInterval, *FieldError) {
	ip, err := netip.ParseAddr(fa.IP)
	if err != nil || ip.Zone() != "" {
		return AddrInterval{}, badField("ip", "%q is not an IP address", fa.IP)
	}
	from, until, fe := interval(fa.From, fa.Until)
	if fe != nil {
		return AddrInterval{}, fe
	}
	return AddrInterval{Addr: NormalizeAddr(ip), From: from, Until: until}, nil
}

// fileBindingIn is FileBinding with wide numbers, to report out-of-range
// values by their value.
type fileBindingIn struct {
	Proto      *string `json:"proto"`
	LocalIP    *string `json:"local_ip"`
	LocalPort  *int64  `json:"local_port"`
	RemoteIP   string  `json:"remote_ip"`
	RemotePort int64   `json:"remote_port"`
	State      *string `json:"state"`
	PID        int64   `json:"pid"`
	StartTime  *string `json:"start_time"`
	Process    string  `json:"process"`
	Exe        string  `json:"exe"`
	Cmdline    string  `json:"cmdline"`
	UID        int64   `json:"uid"`
	User       string  `json:"user"`
	Container  string  `json:"container"`
	From       *string `json:"from"`
	Until      *string `json:"until"`
}

func (d *fileDecoder) binding(raw []byte, off int64, path string) (Binding, error) {
	var fb fileBindingIn
	if err := d.unmarshalObject(raw, off, path, &fb); err != nil {
		return Binding{}, err
	}
	b, fe := d.bindingFrom(&fb)
	if fe != nil {
		return b, d.locate(fe, raw, off, path)
	}
	return b, nil
}

// bindingFrom checks and converts a decoded binding object; owners with
// identical details share one *Process.
func (d *fileDecoder) bindingFrom(fb *fileBindingIn) (Binding, *FieldError) {
	bad := func(field, format string, args ...any) (Binding, *FieldError) {
		return Binding{}, badField(field, format, args...)
	}
	var b Binding
	var err error
	if fb.Proto == nil {
		return bad("proto", "missing (want tcp or udp)")
	}
	switch *fb.Proto {
	case "tcp":
		b.Proto = ProtoTCP
	case "udp":
		b.Proto = ProtoUDP
	default:
		return bad("proto", "%q is not tcp or udp", *fb.Proto)
	}
	if fb.LocalIP == nil {
		return bad("local_ip", "missing")
	}
	lip, err := netip.ParseAddr(*fb.LocalIP)
	if err != nil || lip.Zone() != "" {
		return bad("local_ip", "%q is not an IP address", *fb.LocalIP)
	}
	if fb.LocalPort == nil {
		return bad("local_port", "missing")
	}
	if *fb.LocalPort < 0 || *fb.LocalPort > math.MaxUint16 {
		return bad("local_port", "%d out of range", *fb.LocalPort)
	}
	b.Local = netip.AddrPortFrom(NormalizeAddr(lip), uint16(*fb.LocalPort))
	if fb.RemotePort < 0 || fb.RemotePort > math.MaxUint16 {
		return bad("remote_port", "%d out of range", fb.RemotePort)
	}
	if fb.RemoteIP != "" {
		rip, err := netip.ParseAddr(fb.RemoteIP)
		if err != nil || rip.Zone() != "" {
			return bad("remote_ip", "%q is not an IP address", fb.RemoteIP)
		}
		b.Remote = netip.AddrPortFrom(NormalizeAddr(rip), uint16(fb.RemotePort))
		if !b.Connected() {
			b.Remote = netip.AddrPort{}
		}
	} else if fb.RemotePort != 0 {
		return bad("remote_port", "%d without a remote_ip", fb.RemotePort)
	}
	if fb.State == nil {
		return bad("state", "missing")
	}
	if b.State, err = ParseState(*fb.State); err != nil {
		return bad("state", "%q is not a socket state as ss(8) names them", *fb.State)
	}
	if fb.PID < 0 || fb.PID > math.MaxInt32 {
		return bad("pid", "%d out of range", fb.PID)
	}
	if fb.UID < 0 || fb.UID > math.MaxUint32 {
		return bad("uid", "%d out of range", fb.UID)
	}
	b.UID = uint32(fb.UID)
	var start time.Time
	if fb.StartTime != nil {
		if start, err = ParseFileTime(*fb.StartTime); err != nil {
			return Binding{}, &FieldError{"start_time", err}
		}
	}
	var fe *FieldError
	if b.From, b.Until, fe = interval(fb.From, fb.Until); fe != nil {
		return Binding{}, fe
	}
	if fb.PID != 0 || fb.Process != "" || fb.Exe != "" || fb.Cmdline != "" || !start.IsZero() {
		k := fileOwner{pid: int32(fb.PID), start: unixNano(start), uid: b.UID, process: fb.Process,
			exe: fb.Exe, cmdline: fb.Cmdline, user: fb.User, contnr: fb.Container}
		p := d.procs[k]
		if p == nil {
			p = &Process{PID: k.pid, StartTime: start, Name: fb.Process, Exe: fb.Exe,
				Cmdline: fb.Cmdline, UID: b.UID, User: fb.User, Container: fb.Container}
			if d.procs != nil {
				d.procs[k] = p
			}
		}
		b.Owner = p
	}
	return b, nil
}
