package tracker

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"net/netip"
	"time"
)

// Binary records of the history store. Every value starts with a format
// byte so that a later version can change the layout; all integers are
// big-endian. Times are Unix nanoseconds, math.MinInt64 for the zero time.
//
// binding record (buckets "open", "closed", "closed-long"):
//
//	0      format (1)
//	1      proto
//	2      state
//	3      flags (bit 0: inherited)
//	4..11  from
//	12..19 until
//	20..35 owner key (all zero: no owner)
//	36..43 inode
//	44..51 netns
//	52..55 uid
//	56     local address length (0, 4 or 16), address, port (2)
//	...    remote address length, address, port (2)
//
// process record (bucket "procs", keyed by the owner key):
//
//	0      format (1)
//	1..4   pid
//	5..12  start time
//	13..16 uid
//	...    name, comm, exe, cmdline, user, cgroup, container: each a
//	       uvarint length and the bytes
//
// owner key: pid (4), start time (8), FNV-32a of the other process fields
// (4), so the same pid and start time with other details (after exec) is
// another record.
//
// address record (bucket "addrs", keyed by id): format, from, until,
// address length, address.
const (
	recFormat      = 1
	bindingFixed   = 56
	offFrom        = 4
	offUntil       = 12
	offOwner       = 20
	procKeyLen     = 16
	maxRecordField = 1 << 20 // longest string accepted in a process record
)

// errBadRecord reports a store record that cannot be decoded.
var errBadRecord = errors.New("malformed record")

// unixNano encodes t; the zero time is math.MinInt64.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// fromUnixNano decodes unixNano's result.
func fromUnixNano(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// procKey returns the store key of p (all zero for nil).
func procKey(p *Process) [procKeyLen]byte {
	var k [procKeyLen]byte
	if p == nil {
		return k
	}
	binary.BigEndian.PutUint32(k[0:], uint32(p.PID))
	binary.BigEndian.PutUint64(k[4:], uint64(unixNano(p.StartTime)))
	h := fnv.New32a()
	var u [4]byte
	binary.BigEndian.PutUint32(u[:], p.UID)
	h.Write(u[:])
	for _, s := range [...]string{p.Name, p.Comm, p.Exe, p.Cmdline, p.User, p.Cgroup, p.Container} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	binary.BigEndian.PutUint32(k[12:], h.Sum32())
	return k
}

// appendAddrPort appends an address (length-prefixed) and a port.
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		b = append(b, 0)
	case a.Is4():
		b = append(b, 4)
		v := a.As4()
		b = append(b, v[:]...)
	default:
		b = append(b, 16)
		v := a.As16()
		b = append(b, v[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// readAddrPort reads what appendAddrPort wrote.
func readAddrPort(b []byte) (netip.AddrPort, []byte, error) {
	if len(b) < 1 {
		return netip.AddrPort{}, nil, errBadRecord
	}
	n := int(b[0])
	b = b[1:]
	if (n != 0 && n != 4 && n != 16) || len(b) < n+2 {
		return netip.AddrPort{}, nil, errBadRecord
	}
	var a netip.Addr
	switch n {
	case 4:
		a = netip.AddrFrom4([4]byte(b[:4]))
	case 16:
		a = netip.AddrFrom16([16]byte(b[:16]))
	}
	port := binary.BigEndian.Uint16(b[n:])
	b = b[n+2:]
	if !a.IsValid() {
		if port != 0 {
			return netip.AddrPort{}, nil, errBadRecord
		}
		return netip.AddrPort{}, b, nil
	}
	return netip.AddrPortFrom(a, port), b, nil
}

// encodeBinding appends the record of b owned by the process with key pk.
func encodeBinding(dst []byte, b *Binding, pk [procKeyLen]byte) []byte {
	var flags byte
	if b.Inherited {
		flags |= 1
	}
	dst = append(dst, recFormat, byte(b.Proto), byte(b.State), flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano(b.From)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano(b.Until)))
	dst = append(dst, pk[:]...)
	dst = binary.BigEndian.AppendUint64(dst, b.Inode)
	dst = binary.BigEndian.AppendUint64(dst, b.NetNS)
	dst = binary.BigEndian.AppendUint32(dst, b.UID)
	dst = appendAddrPort(dst, b.Local)
	dst = appendAddrPort(dst, b.Remote)
	return dst
}

// recordTimes returns the from and until of a binding record without
// decoding the rest.
func recordTimes(v []byte) (from, until int64, ok bool) {
	if len(v) < bindingFixed || v[0] != recFormat {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(v[offFrom:])), int64(binary.BigEndian.Uint64(v[offUntil:])), true
}

// setRecordUntil overwrites the until of a binding record in place.
func setRecordUntil(v []byte, until time.Time) {
	binary.BigEndian.PutUint64(v[offUntil:], uint64(unixNano(until)))
}

// decodeBinding decodes a binding record; the owner key is returned for
// the caller to resolve.
func decodeBinding(v []byte) (Binding, [procKeyLen]byte, error) {
	var b Binding
	var pk [procKeyLen]byte
	if len(v) < bindingFixed || v[0] != recFormat {
		return b, pk, errBadRecord
	}
	b.Proto = Proto(v[1])
	b.State = State(v[2])
	b.Inherited = v[3]&1 != 0
	b.From = fromUnixNano(int64(binary.BigEndian.Uint64(v[offFrom:])))
	b.Until = fromUnixNano(int64(binary.BigEndian.Uint64(v[offUntil:])))
	copy(pk[:], v[offOwner:offOwner+procKeyLen])
	b.Inode = binary.BigEndian.Uint64(v[36:])
	b.NetNS = binary.BigEndian.Uint64(v[44:])
	b.UID = binary.BigEndian.Uint32(v[52:])
	rest := v[bindingFixed:]
	var err error
	if b.Local, rest, err = readAddrPort(rest); err != nil {
		return b, pk, err
	}
	if b.Remote, rest, err = readAddrPort(rest); err != nil {
		return b, pk, err
	}
	if len(rest) != 0 {
		return b, pk, errBadRecord
	}
	return b, pk, nil
}

// encodeProcess appends the record of p.
func encodeProcess(dst []byte, p *Process) []byte {
	dst = append(dst, recFormat)
	dst = binary.BigEndian.AppendUint32(dst, uint32(p.PID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano(p.StartTime)))
	dst = binary.BigEndian.AppendUint32(dst, p.UID)
	for _, s := range [...]string{p.Name, p.Comm, p.Exe, p.Cmdline, p.User, p.Cgroup, p.Container} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// decodeProcess decodes a process record.
func decodeProcess(v []byte) (*Process, error) {
	if len(v) < 17 || v[0] != recFormat {
		return nil, errBadRecord
	}
	p := &Process{
		PID:       int32(binary.BigEndian.Uint32(v[1:])),
		StartTime: fromUnixNano(int64(binary.BigEndian.Uint64(v[5:]))),
		UID:       binary.BigEndian.Uint32(v[13:]),
	}
	rest := v[17:]
	for _, dst := range [...]*string{&p.Name, &p.Comm, &p.Exe, &p.Cmdline, &p.User, &p.Cgroup, &p.Container} {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > maxRecordField || n > uint64(len(rest)-w) {
			return nil, errBadRecord
		}
		*dst = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	if len(rest) != 0 {
		return nil, errBadRecord
	}
	return p, nil
}

// encodeAddr appends an address interval record.
func encodeAddr(dst []byte, a *AddrInterval) []byte {
	dst = append(dst, recFormat)
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano(a.From)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano(a.Until)))
	ap := appendAddrPort(nil, netip.AddrPortFrom(a.Addr, 0))
	return append(dst, ap...)
}

// decodeAddr decodes an address interval record.
func decodeAddr(v []byte) (AddrInterval, error) {
	if len(v) < 17 || v[0] != recFormat {
		return AddrInterval{}, errBadRecord
	}
	a := AddrInterval{
		From:  fromUnixNano(int64(binary.BigEndian.Uint64(v[1:]))),
		Until: fromUnixNano(int64(binary.BigEndian.Uint64(v[9:]))),
	}
	ap, rest, err := readAddrPort(v[17:])
	if err != nil || len(rest) != 0 || !ap.Addr().IsValid() {
		return AddrInterval{}, errBadRecord
	}
	a.Addr = ap.Addr()
	return a, nil
}

// idKey is the key of an open binding or address record.
func idKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id)
}

// closedKey is the key of a closed binding: its end (sortable) and id.
func closedKey(until time.Time, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, sortableTime(unixNano(until)))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

// sortableTime maps signed nanoseconds to unsigned keys in the same order.
func sortableTime(n int64) uint64 { return uint64(n) ^ (1 << 63) }
