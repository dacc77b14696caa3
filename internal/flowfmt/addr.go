package flowfmt

import (
	"net/netip"
	"strconv"
)

// appendIPv4 appends a dotted quad.
func appendIPv4(b []byte, a [4]byte) []byte {
	for i, v := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return b
}

// appendIPv6 appends a as glibc's inet_ntop(AF_INET6) writes it: the
// longest run (first on ties) of two or more zero groups becomes "::", and
// only "::a.b.c.d" (six zero groups) and "::ffff:a.b.c.d" get a dotted
// quad. Go's netip differs for the first form.
func appendIPv6(b []byte, a [16]byte) []byte {
	var w [8]uint16
	for i := range w {
		w[i] = uint16(a[2*i])<<8 | uint16(a[2*i+1])
	}
	bestBase, bestLen := -1, 0
	curBase, curLen := -1, 0
	for i, v := range w {
		if v == 0 {
			if curBase < 0 {
				curBase, curLen = i, 1
			} else {
				curLen++
			}
			continue
		}
		if curBase >= 0 {
			if bestBase < 0 || curLen > bestLen {
				bestBase, bestLen = curBase, curLen
			}
			curBase = -1
		}
	}
	if curBase >= 0 && (bestBase < 0 || curLen > bestLen) {
		bestBase, bestLen = curBase, curLen
	}
	if bestBase >= 0 && bestLen < 2 {
		bestBase = -1
	}
	for i := 0; i < 8; i++ {
		if bestBase >= 0 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				b = append(b, ':')
			}
			continue
		}
		if i != 0 {
			b = append(b, ':')
		}
		if i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff)) {
			return appendIPv4(b, [4]byte{a[12], a[13], a[14], a[15]})
		}
		b = strconv.AppendUint(b, uint64(w[i]), 16)
	}
	if bestBase >= 0 && bestBase+bestLen == 8 {
		b = append(b, ':')
	}
	return b
}

// appendAddr appends an address as nfdump prints it: IPv4 for 4-byte
// addresses and for a missing one (nfdump's zeroed record prints 0.0.0.0),
// IPv6 otherwise. It reports whether it printed IPv6.
func appendAddr(b []byte, a netip.Addr) ([]byte, bool) {
	switch {
	case a.Is6():
		return appendIPv6(b, a.As16()), true
	case a.Is4():
		return appendIPv4(b, a.As4()), false
	}
	return append(b, "0.0.0.0"...), false
}

// condenseV6 shortens an IPv6 text longer than 16 characters to its first
// 7 and last 7 characters joined by "..", as nfdump does for its 16-wide
// address columns: 2001:db8:99::1710:cf54 -> 2001:db..10:cf54.
func condenseV6(b []byte, start int) []byte {
	n := len(b) - start
	if n <= 16 {
		return b
	}
	s := b[start:]
	s[7], s[8] = '.', '.'
	copy(s[9:], s[n-7:])
	return b[:start+16]
}
