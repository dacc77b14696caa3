package tracker

import (
	"context"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// listOtherNetNS appends the sockets of every network namespace, other
// than the host's, that holds a process.
func (s *SystemScanner) listOtherNetNS(ctx context.Context, dst []Socket) []Socket {
	pids := map[uint64]int32{}
	for pid, e := range s.procs {
		if e.netns != 0 && e.netns != s.hostNS {
			if p, ok := pids[e.netns]; !ok || pid < p {
				pids[e.netns] = pid
			}
		}
	}
	for ns, pid := range pids {
		src := s.netns[ns]
		if src == nil {
			var err error
			src, err = s.openNetNS(ctx, pid)
			if err != nil {
				if !s.netnsErr {
					s.netnsErr = true
					s.log.Warn("cannot list the sockets of other network namespaces", "netns", ns, "pid", pid, "err", err)
				}
				continue
			}
			s.netns[ns] = src
		}
		src.usedScan = s.scanNo
		n := len(dst)
		var err error
		dst, err = src.src.AppendSockets(ctx, dst)
		if err != nil {
			s.log.Debug("cannot list the sockets of a network namespace", "netns", ns, "err", err)
			dst = dst[:n]
			src.src.Close()
			delete(s.netns, ns)
			continue
		}
		for i := n; i < len(dst); i++ {
			dst[i].NetNS = ns
		}
	}
	for ns, src := range s.netns {
		if src.usedScan != s.scanNo {
			src.src.Close()
			delete(s.netns, ns)
		}
	}
	return dst
}

// openNetNS opens a socket source inside the network namespace of pid:
// a netlink socket created there (it stays bound to that namespace), or
// /proc/<pid>/net with the procfs source.
func (s *SystemScanner) openNetNS(ctx context.Context, pid int32) (*nsSource, error) {
	if s.source.Name() == SourceProcfs {
		fs, err := procfs.NewFS(filepath.Join(s.opts.ProcRoot, pidString(pid)))
		if err != nil {
			return nil, err
		}
		return &nsSource{src: NewProcNetSource(fs)}, nil
	}
	src, err := netlinkSourceInNetNS(ctx, filepath.Join(s.opts.ProcRoot, pidString(pid), "ns", "net"))
	if err != nil {
		return nil, err
	}
	return &nsSource{src: src}, nil
}
