package tracker

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/procfs"

	"github.com/netdumper/netdumper/tracker/ebpf"
)

// ebpfSource adapts the eBPF source (package ebpf) to EventSource.
type ebpfSource struct {
	src *ebpf.Source
	// bootTime is /proc/stat's btime, the base the system scanner adds
	// process start ticks to: owners' start times are computed alike.
	bootTime time.Time
	selfNS   uint64 // this process's network namespace, for events without one
}

func openEBPF(opts ebpf.Options) (EventSource, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("procfs: %w", err)
	}
	bt, err := bootTime(fs)
	if err != nil {
		return nil, err
	}
	var selfNS uint64
	if l, err := os.Readlink("/proc/self/ns/net"); err == nil {
		selfNS = parseNSLink(l)
	}
	src, err := ebpf.Open(opts)
	if err != nil {
		return nil, err
	}
	return &ebpfSource{src: src, bootTime: bt, selfNS: selfNS}, nil
}

func (s *ebpfSource) Name() string { return "ebpf" }

func (s *ebpfSource) Run(ctx context.Context, fn func(SockEvent)) error {
	return s.src.Run(ctx, func(ev ebpf.ConnEvent) { fn(s.convert(&ev)) })
}

func (s *ebpfSource) Stats() EventSourceStats { return ebpfStats(s.src.Stats()) }

func (s *ebpfSource) Close() error { return s.src.Close() }

// convert turns an eBPF event into a SockEvent.
func (s *ebpfSource) convert(ev *ebpf.ConnEvent) SockEvent {
	out := SockEvent{
		Kind:      SockEventKind(ev.Kind), // the same numbering
		Time:      ev.Time,
		Socket:    Socket{Proto: Proto(ev.Proto), Local: ev.Local, Remote: ev.Remote, State: State(ev.State), NetNS: ev.NetNS},
		Cookie:    ev.Cookie,
		Inherited: ev.Inherited,
	}
	if out.NetNS == 0 {
		out.NetNS = s.selfNS
	}
	if o := ev.Owner; o != nil {
		ticks := o.StartTicks()
		out.Owner = &EventOwner{
			PID: o.TGID, StartTicks: ticks, UID: o.UID, Comm: o.Comm, CgroupID: o.CgroupID,
			StartTime: s.bootTime.Add(ticksToDuration(ticks)),
		}
	}
	return out
}
