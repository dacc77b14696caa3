package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// procEvents follows fork, exec and exit events from the proc connector.
type procEvents struct {
	f    *os.File
	log  *slog.Logger
	done chan struct{}

	mu      sync.Mutex
	changed map[int32]bool // pids that exec'd or changed uid
	owners  map[int32]bool // pids that owned sockets at the last scan
	lost    bool
	notify  chan<- struct{}
}

// startProcEvents subscribes to the proc connector and starts the reading
// goroutine. notify receives a (coalesced) value when a socket owner
// exits or execs.
func startProcEvents(log *slog.Logger, notify chan<- struct{}) (*procEvents, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind proc connector: %w", err)
	}
	// A larger buffer absorbs bursts of fork/exit (a build, a shell loop).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Sendto(fd, cnControl(procCnMcastListn), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribe to proc connector: %w", err)
	}
	pe := &procEvents{
		f:       os.NewFile(uintptr(fd), "cn_proc"),
		log:     log,
		done:    make(chan struct{}),
		changed: map[int32]bool{},
		owners:  map[int32]bool{},
		notify:  notify,
	}
	go pe.run()
	return pe, nil
}

// cnControl builds a PROC_CN_MCAST_LISTEN or _IGNORE message.
func cnControl(op uint32) []byte {
	b := appendNlHeader(nil, nlHeader{Len: nlmsgHdrLen + cnMsgLen + 4, Type: nlmsgDone})
	for _, v := range []uint32{cnIdxProc, cnValProc, 0, 0} {
		b = binary.NativeEndian.AppendUint32(b, v)
	}
	b = binary.NativeEndian.AppendUint16(b, 4) // len
	b = binary.NativeEndian.AppendUint16(b, 0) // flags
	return binary.NativeEndian.AppendUint32(b, op)
}

func (pe *procEvents) run() {
	defer close(pe.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := pe.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				pe.mu.Lock()
				pe.lost = true
				pe.mu.Unlock()
				continue
			}
			pe.log.Warn("proc connector read failed; detecting exec by polling", "err", err)
			pe.mu.Lock()
			pe.lost = true
			pe.mu.Unlock()
			return
		}
		_ = nlMessages(buf[:n], func(h nlHeader, p []byte, _ int) error {
			pe.handle(p)
			return nil
		})
	}
}

// handle processes one connector message payload.
func (pe *procEvents) handle(p []byte) {
	what, data, ok := parseProcEvent(p)
	if !ok {
		return
	}
	pe.mu.Lock()
	defer pe.mu.Unlock()
	tgid := int32(data[1])
	switch what {
	case procEventExec:
		pe.changed[tgid] = true
	case procEventUID:
		pe.changed[tgid] = true // setuid: the user changes, no need to scan early
		return
	case procEventExit:
		if data[0] != data[1] {
			return // a thread, not the process
		}
	default:
		return
	}
	if pe.owners[tgid] {
		select {
		case pe.notify <- struct{}{}:
		default:
		}
	}
}

// drain returns the pids that exec'd or changed uid since the last call and whether
// events were lost (then every process must be checked by polling).
func (pe *procEvents) drain() (map[int32]bool, bool) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	changed, lost := pe.changed, pe.lost
	pe.changed, pe.lost = map[int32]bool{}, false
	return changed, lost
}

// setOwners records which pids own sockets, for Changes notifications.
func (pe *procEvents) setOwners(owners map[int32]bool) {
	pe.mu.Lock()
	pe.owners = owners
	pe.mu.Unlock()
}

func (pe *procEvents) close() error {
	if sc, err := pe.f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_ = unix.Sendto(int(fd), cnControl(procCnMcastIgnor), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		})
	}
	err := pe.f.Close()
	<-pe.done
	return err
}
