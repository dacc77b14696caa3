package nfcap

import "syscall"

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writeback of the
// range's dirty pages without waiting for it.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing [off, off+n) of the file
// behind fd to disk, so that the fsync that makes a rewrite durable finds
// little left to do. Errors are ignored: it is only a hint.
func startWriteback(fd uintptr, off, n int64) {
	syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
