//go:build !linux

package nfcap

// copyXattrs copies nothing where extended attributes are not supported
// by this package.
func copyXattrs(src, dst string) error { return nil }
