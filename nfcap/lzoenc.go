package nfcap

// lzoState is the reusable state of the LZO1X encoder.
type lzoState struct{}

// lzoCompress appends to dst a valid LZO1X stream that decodes to src. This
// first version emits src as literal runs only (the simplest valid stream,
// spec section 10.2): correct for every decoder, but it does not compress.
func lzoCompress(dst, src []byte, _ *lzoState) []byte {
	n := len(src)
	switch {
	case n == 0:
	case n <= 238:
		dst = append(dst, byte(17+n))
	default:
		// Long literal run: 0, then (n-18)/255 zero bytes, then the rest.
		dst = append(dst, 0)
		rest := n - 18
		for rest > 255 {
			dst = append(dst, 0)
			rest -= 255
		}
		dst = append(dst, byte(rest))
	}
	dst = append(dst, src...)
	return append(dst, 0x11, 0, 0)
}
