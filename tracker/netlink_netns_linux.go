package tracker

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// netlinkSourceInNetNS opens a sock_diag source inside the network
// namespace at nsPath (a /proc/<pid>/ns/net file). A socket belongs to the
// namespace it was created in, so the source keeps dumping that namespace
// after the thread has switched back. The switch happens on a locked OS
// thread of a goroutine of its own: if switching back fails, the goroutine
// exits without unlocking and the runtime discards the thread.
func netlinkSourceInNetNS(ctx context.Context, nsPath string) (SocketSource, error) {
	target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer unix.Close(target)

	type result struct {
		src *netlinkSource
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		src, err := newNetlinkSource(ctx, false)
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			// Leave the thread locked: it dies with this goroutine.
			if src != nil {
				src.Close()
			}
			ch <- result{err: fmt.Errorf("return to own network namespace: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{src: src, err: err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return r.src, nil
}
