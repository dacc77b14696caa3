//go:build !linux

package nfcap

// startWriteback does nothing where sync_file_range does not exist.
func startWriteback(fd uintptr, off, n int64) {}
