//go:build linux

package ebpf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// kernelBTFPath is where the kernel exposes its own BTF.
const kernelBTFPath = "/sys/kernel/btf/vmlinux"

// epochRefresh is how often Run re-reads the clocks to follow steps of the
// wall clock.
const epochRefresh = 10 * time.Second

// Counter indices of the stats map; keep in sync with STAT_* in
// bpf/netdumper.bpf.c.
const (
	statEvents = iota
	statRingbufFull
	statNoStorage
	statUnowned
	statDedupFull
	statMax
)

// Source is a running set of eBPF programs that report socket events.
// Its methods are safe for concurrent use; Run must not be called by two
// goroutines at once.
type Source struct {
	log   *slog.Logger
	objs  netdumperObjects
	links []link.Link
	rd    *ringbuf.Reader
	poll  time.Duration

	delivered atomic.Uint64
	lost      atomic.Uint64
	running   atomic.Bool

	// mu guards the kernel objects against Close while Stats reads them.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Open loads the eBPF programs, attaches them and returns a Source ready
// to Run. Every failure to load or attach matches ErrUnsupported (with
// the reason); the caller should then fall back to polling. It needs
// root, or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN (for
// cgroup attachment and, when none is mounted, mounting cgroup2).
func Open(opts Options) (_ *Source, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ringBytes := opts.RingBufferBytes
	if ringBytes == 0 {
		ringBytes = DefaultRingBufferBytes
	}
	if ringBytes < os.Getpagesize() || ringBytes > maxRingBufferBytes || ringBytes&(ringBytes-1) != 0 {
		return nil, fmt.Errorf("ebpf options: ring buffer of %d bytes: want a power of two from %d to %d",
			ringBytes, os.Getpagesize(), maxRingBufferBytes)
	}
	poll := opts.PollInterval
	if poll == 0 {
		poll = DefaultPollInterval
	}
	if poll < 0 || poll > maxPollInterval {
		return nil, fmt.Errorf("ebpf options: poll interval %v: want up to %v", poll, maxPollInterval)
	}
	convs := opts.Conversations
	if convs == 0 {
		convs = DefaultConversations
	}
	if convs < 1 || convs > maxConversations {
		return nil, fmt.Errorf("ebpf options: conversations %d: want 1 to %d", convs, maxConversations)
	}

	var kernelTypes *btf.Spec
	switch {
	case opts.KernelBTF != "":
		kernelTypes, err = btf.LoadSpec(opts.KernelBTF)
		if err != nil {
			return nil, unsupported("kernel BTF "+opts.KernelBTF, err)
		}
	default:
		if _, err := os.Stat(kernelBTFPath); err != nil {
			return nil, unsupported("no kernel BTF at "+kernelBTFPath+" (kernel built without CONFIG_DEBUG_INFO_BTF; set Options.KernelBTF)", err)
		}
	}

	if err := probePrivilege(); err != nil {
		return nil, err
	}
	spec, err := loadNetdumper()
	if err != nil {
		return nil, unsupported("embedded BPF object", err)
	}
	spec.Maps[netdumperMapEvents].MaxEntries = uint32(ringBytes)
	spec.Maps[netdumperMapConvs].MaxEntries = uint32(convs)
	if err := spec.Variables[netdumperVarWakeBytes].Set(uint64(ringBytes / 4)); err != nil {
		return nil, unsupported("embedded BPF object", err)
	}

	s := &Source{log: log, poll: poll}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	err = spec.LoadAndAssign(&s.objs, &cebpf.CollectionOptions{
		Programs: cebpf.ProgramOptions{KernelTypes: kernelTypes},
	})
	if err != nil {
		return nil, unsupported(loadReason(err), err)
	}

	if err := s.attachCgroup(opts.CgroupPath, opts.NoSendmsgHook); err != nil {
		return nil, err
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: s.objs.NdState, AttachType: cebpf.AttachTraceRawTp})
	if err != nil {
		return nil, unsupported(attachReason("tp_btf/inet_sock_set_state", err), err)
	}
	s.links = append(s.links, l)

	s.rd, err = ringbuf.NewReader(s.objs.Events)
	if err != nil {
		return nil, unsupported("ring buffer reader", err)
	}
	log.Debug("ebpf source attached", "links", len(s.links), "ringbuf_bytes", ringBytes, "conversations", convs)
	return s, nil
}

// cgroupPrograms pairs each cgroup program with its attach type.
func (s *Source) cgroupPrograms() []struct {
	name   string
	prog   *cebpf.Program
	attach cebpf.AttachType
} {
	p := &s.objs.netdumperPrograms
	return []struct {
		name   string
		prog   *cebpf.Program
		attach cebpf.AttachType
	}{
		{"cgroup/sock_create", p.NdSockCreate, cebpf.AttachCGroupInetSockCreate},
		{"cgroup/post_bind4", p.NdPostBind4, cebpf.AttachCGroupInet4PostBind},
		{"cgroup/post_bind6", p.NdPostBind6, cebpf.AttachCGroupInet6PostBind},
		{"cgroup/connect4", p.NdConnect4, cebpf.AttachCGroupInet4Connect},
		{"cgroup/connect6", p.NdConnect6, cebpf.AttachCGroupInet6Connect},
		{"cgroup/sendmsg4", p.NdSendmsg4, cebpf.AttachCGroupUDP4Sendmsg},
		{"cgroup/sendmsg6", p.NdSendmsg6, cebpf.AttachCGroupUDP6Sendmsg},
		{"cgroup/sock_release", p.NdSockRelease, cebpf.AttachCgroupInetSockRelease},
		{"cgroup_skb/egress", p.NdEgress, cebpf.AttachCGroupInetEgress},
	}
}

// attachCgroup attaches the cgroup programs to path, or to the root of
// the cgroup v2 hierarchy when path is empty.
func (s *Source) attachCgroup(path string, noSendmsg bool) error {
	if path == "" {
		var cleanup func()
		var err error
		path, cleanup, err = cgroup2Root(s.log)
		if err != nil {
			return err
		}
		defer cleanup()
	} else if err := checkCgroup2(path); err != nil {
		return err
	}
	for _, p := range s.cgroupPrograms() {
		if noSendmsg && (p.attach == cebpf.AttachCGroupUDP4Sendmsg || p.attach == cebpf.AttachCGroupUDP6Sendmsg) {
			continue
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: p.attach, Program: p.prog})
		if err != nil {
			return unsupported(attachReason(p.name, err), err)
		}
		s.links = append(s.links, l)
	}
	s.log.Debug("ebpf cgroup programs attached", "cgroup", path)
	return nil
}

// checkCgroup2 reports whether path is a cgroup v2 directory.
func checkCgroup2(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return unsupported("cgroup "+path, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return unsupported("cgroup "+path+" is not a cgroup v2 directory", nil)
	}
	return nil
}

// cgroup2Root finds the root of the cgroup v2 hierarchy, mounting it
// privately when it is not mounted. cleanup undoes such a mount; call it
// once the programs are attached.
func cgroup2Root(log *slog.Logger) (path string, cleanup func(), err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", nil, unsupported("reading mounts", err)
	}
	path, err = findCgroup2(f)
	f.Close()
	if err != nil {
		return "", nil, unsupported("reading /proc/self/mountinfo", err)
	}
	if path != "" {
		if err := checkCgroup2(path); err != nil {
			return "", nil, err
		}
		return path, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "netdumper-cgroup2-")
	if err != nil {
		return "", nil, unsupported("no cgroup v2 mount, and no directory to mount one", err)
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		return "", nil, unsupported("no cgroup v2 mount, and mounting one failed", err)
	}
	log.Debug("mounted cgroup2 privately for attachment", "dir", dir)
	return dir, func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			log.Warn("unmounting private cgroup2 mount", "dir", dir, "err", err)
			return
		}
		os.Remove(dir)
	}, nil
}

// probePrivilege creates and frees a one-entry array map: the cheapest
// way to learn whether this process may use bpf(2) at all. Without it a
// permission error surfaces later, from cilium/ebpf's feature probes, as
// a misleading "not supported".
func probePrivilege() error {
	m, err := cebpf.NewMap(&cebpf.MapSpec{Type: cebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
			return unsupported("permission denied using bpf(2) (needs root, or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN)", err)
		}
		return unsupported("bpf(2) unusable", err)
	}
	return m.Close()
}

// loadReason explains a collection load error to an operator.
func loadReason(err error) string {
	var verr *cebpf.VerifierError
	switch {
	case errors.As(err, &verr):
		return "kernel verifier rejected a program (kernel too old or too different)"
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return "permission denied loading BPF programs (needs root, or CAP_BPF and CAP_PERFMON)"
	case errors.Is(err, cebpf.ErrNotSupported):
		return "kernel lacks a needed BPF feature (needs Linux 5.12 or later with BTF)"
	case errors.Is(err, btf.ErrNotFound):
		return "kernel BTF lacks a type the programs need"
	}
	return "loading BPF programs"
}

// attachReason explains an attach error.
func attachReason(what string, err error) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return "permission denied attaching " + what + " (needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)"
	case errors.Is(err, cebpf.ErrNotSupported), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTSUP):
		return "kernel cannot attach " + what
	}
	return "attaching " + what
}

// Run reads events and calls fn for each, in order, from the calling
// goroutine, until ctx is done (it then delivers what is already queued
// and returns ctx.Err()) or the Source is closed (it returns ErrClosed).
// Events reach fn within Options.PollInterval. fn should be quick: while
// it runs, new events wait in the ring buffer, and when the buffer is
// full the kernel drops them (Stats.RingbufDrops).
func (s *Source) Run(ctx context.Context, fn func(ConnEvent)) error {
	if s.rd == nil {
		return ErrClosed
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("ebpf source: Run called twice concurrently")
	}
	defer s.running.Store(false)

	stop := context.AfterFunc(ctx, func() {
		// Wakes ReadInto; it returns what is queued, then ErrFlushed.
		_ = s.rd.Flush()
	})
	defer stop()

	epoch, err := bootEpoch()
	if err != nil {
		return fmt.Errorf("ebpf source: reading clocks: %w", err)
	}
	epochAt := time.Now()
	var rec ringbuf.Record
	s.rd.SetDeadline(time.Now().Add(s.poll))
	for {
		err := s.rd.ReadInto(&rec)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Everything queued without a wakeup has been read.
			if err := ctx.Err(); err != nil {
				return err
			}
			s.rd.SetDeadline(time.Now().Add(s.poll))
			continue
		case errors.Is(err, ringbuf.ErrFlushed):
			// ctx is done and what was queued then has been delivered.
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		case errors.Is(err, os.ErrClosed):
			return ErrClosed
		default:
			return fmt.Errorf("ebpf source: reading ring buffer: %w", err)
		}
		if time.Since(epochAt) > epochRefresh {
			if e, err := bootEpoch(); err == nil {
				epoch, epochAt = e, time.Now()
			}
		}
		ev, err := decode(rec.RawSample, epoch)
		if err != nil {
			if s.lost.Add(1) == 1 {
				s.log.Warn("ebpf source: discarding malformed record", "err", err)
			}
			continue
		}
		s.delivered.Add(1)
		fn(ev)
	}
}

// Stats returns the counters. It reads the kernel's per-CPU counters, so
// it costs a few system calls; call it at scrape time, not per event.
// After Close it returns the user-space counters only.
func (s *Source) Stats() Stats {
	st := Stats{Events: s.delivered.Load(), Lost: s.lost.Load()}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.objs.Stats == nil || s.objs.NdState == nil {
		return st
	}
	var k [statMax]uint64
	for i := range uint32(statMax) {
		var perCPU []uint64
		if err := s.objs.Stats.Lookup(i, &perCPU); err != nil {
			continue
		}
		for _, v := range perCPU {
			k[i] += v
		}
	}
	if ps, err := s.objs.NdState.Stats(); err == nil {
		st.Missed = ps.RecursionMisses
	}
	st.Submitted = k[statEvents]
	st.RingbufDrops = k[statRingbufFull]
	st.KernelDrops = k[statNoStorage] + k[statDedupFull]
	st.Unowned = k[statUnowned]
	return st
}

// Close detaches every program, frees the maps and ends Run. It is safe
// to call more than once.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		var errs []error
		if s.rd != nil {
			errs = append(errs, s.rd.Close())
		}
		for _, l := range s.links {
			errs = append(errs, l.Close())
		}
		errs = append(errs, s.objs.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// programIDs returns the kernel ids of the loaded programs (for tests that
// check nothing stays attached).
func (s *Source) programIDs() ([]cebpf.ProgramID, error) {
	var ids []cebpf.ProgramID
	for _, p := range []*cebpf.Program{s.objs.NdState, s.objs.NdPostBind4, s.objs.NdPostBind6,
		s.objs.NdConnect4, s.objs.NdConnect6, s.objs.NdSendmsg4, s.objs.NdSendmsg6,
		s.objs.NdSockRelease, s.objs.NdEgress, s.objs.NdSockCreate} {
		info, err := p.Info()
		if err != nil {
			return nil, err
		}
		id, ok := info.ID()
		if !ok {
			return nil, errors.New("program id not available")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

var _ io.Closer = (*Source)(nil)
