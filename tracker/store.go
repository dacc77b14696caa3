package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// HistoryFile is the name of the history store inside a state directory.
const HistoryFile = "history.db"

// DefaultLockTimeout is how long OpenStore waits for the state file's lock.
const DefaultLockTimeout = time.Second

const (
	storeMagic   = "netdumper history"
	storeVersion = 1

	// longInterval separates closed intervals into two buckets so that a
	// window query scans only the short ones that can overlap it.
	longInterval = time.Hour

	// historyChunk is how many records a History read transaction
	// collects before the callback runs outside the transaction.
	historyChunk = 512

	// expireChunk bounds the deletions of one retention transaction.
	expireChunk = 20000

	// compactMinSize and compactFreeRatio decide when OpenStore rewrites
	// the file: bbolt reuses freed pages but never shrinks the file.
	compactMinSize   = 32 << 20
	compactFreeRatio = 0.5
)

var (
	bucketMeta       = []byte("meta")
	bucketOpen       = []byte("open")
	bucketClosed     = []byte("closed")
	bucketClosedLong = []byte("closed-long")
	bucketProcs      = []byte("procs")
	bucketAddrs      = []byte("addrs")

	keyMagic    = []byte("magic")
	keyVersion  = []byte("version")
	keyHost     = []byte("host")
	keySeq      = []byte("seq")
	keyNextID   = []byte("next-id")
	keyLastScan = []byte("last-scan")
	keyCreated  = []byte("created")
)

// Errors of the history store.
var (
	// ErrStateLocked means another process holds the state file: a
	// running `netdumper serve` (or a reader, while a writer tries).
	ErrStateLocked = errors.New("state file is locked by another process")
	// ErrNotStateFile means the file is not a netdumper history store:
	// garbage, damaged, or another application's bbolt database.
	ErrNotStateFile = errors.New("not a netdumper state file")
	// ErrNoHistory means the state directory has no history store yet.
	ErrNoHistory = errors.New("no history in state directory")
)

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// ReadOnly opens an existing store for reading (bbolt's shared lock):
	// it fails with ErrStateLocked while a writer (`serve`) holds it.
	ReadOnly bool
	// LockTimeout is how long to wait for the file lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// Host names the host a new store records; default os.Hostname.
	// Ignored for read-only stores (the recorded name is used).
	Host string
	// Logger receives notices (nil: discard).
	Logger *slog.Logger
}

// Store is the persisted history of one host: binding intervals, address
// intervals, the last event sequence number and the last scan time, in a
// bbolt file (HistoryFile) under a state directory. Its read methods are
// safe for concurrent use; only the Tracker that opened it writes.
type Store struct {
	db       *bbolt.DB
	path     string
	readOnly bool
	log      *slog.Logger

	// Recorded at open; the writer keeps them current.
	host     string
	seq      uint64
	nextID   uint64
	lastScan time.Time
	created  time.Time
}

// OpenStore opens (or, unless read-only, creates) the history store of
// the state directory dir. A file that is not a netdumper store gives an
// error wrapping ErrNotStateFile naming it; it is never modified. A file
// held by another writer gives ErrStateLocked after opts.LockTimeout.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	path := filepath.Join(dir, HistoryFile)
	if opts.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (has `netdumper serve` run with this state directory?)", path, ErrNoHistory)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	s := &Store{path: path, readOnly: opts.ReadOnly, log: logger}
	if err := s.open(timeout); err != nil {
		return nil, err
	}
	if err := s.checkMeta(opts.Host); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// boltOptions are the bbolt settings of the store. NoFreelistSync keeps
// each commit small however fragmented the file is (the freelist is
// rebuilt when the file is opened).
func boltOptions(readOnly bool, timeout time.Duration) *bbolt.Options {
	return &bbolt.Options{
		Timeout:        timeout,
		ReadOnly:       readOnly,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
}

// open opens the bbolt file and translates its errors.
func (s *Store) open(timeout time.Duration) (err error) {
	defer recoverCorrupt(&err, s.path)
	if err := checkBoltSize(s.path); err != nil {
		return err
	}
	db, err := bbolt.Open(s.path, 0o600, boltOptions(s.readOnly, timeout))
	if err == nil {
		s.db = db
		return nil
	}
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		hint := "another `netdumper serve` uses this state directory"
		if s.readOnly {
			hint = "a running `netdumper serve` holds it; ask that tracker over its API instead"
		}
		if info, ierr := ReadDaemonInfo(filepath.Dir(s.path)); ierr == nil && processAlive(info.PID) {
			hint += fmt.Sprintf(" (serve pid %d", info.PID)
			if info.API != "" {
				hint += ", API " + info.API
			}
			hint += ")"
		} else if ierr == nil {
			// A serve killed with -9 leaves its serve.json behind.
			hint += fmt.Sprintf(" (serve.json names pid %d, which is not running: some other process holds the file)", info.PID)
		}
		return fmt.Errorf("%s: %w: %s", s.path, ErrStateLocked, hint)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrInvalidMapping):
		return fmt.Errorf("%s: %w (damaged or not a bbolt file: %v); move it away to start a new history", s.path, ErrNotStateFile, err)
	}
	return fmt.Errorf("open %s: %w", s.path, err)
}

// checkBoltSize refuses a bbolt file shorter than its own meta page says
// it is (cut short by a full disk or a bad copy): bbolt would map it and
// crash with a memory fault reading past its end, in a goroutine of its
// own where no recover can catch it. A missing or empty file passes (a new
// store), and so does one whose meta pages are not bbolt's: bbolt refuses
// those itself.
func checkBoltSize(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	// Page 0 and page 1 hold a meta each: the page header (16 bytes),
	// then magic, version, page size, flags (4 bytes each), the root
	// bucket (16), the freelist page, the page count ("high water
	// mark"), the transaction id and an FNV-64a checksum of what precedes
	// it in the meta (8 each).
	const hdr, metaLen = 16, 64
	type meta struct{ txid, pages, pageSize uint64 }
	// readMeta returns the meta at off, if it is a valid one.
	readMeta := func(off int64) (meta, bool) {
		buf := make([]byte, hdr+metaLen)
		if _, err := f.ReadAt(buf, off); err != nil {
			return meta{}, false
		}
		m := buf[hdr:]
		le := binary.LittleEndian
		h := fnv.New64a()
		h.Write(m[:56])
		if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 || h.Sum64() != le.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{txid: le.Uint64(m[48:]), pages: le.Uint64(m[40:]), pageSize: uint64(le.Uint32(m[8:]))}, true
	}
	var metas []meta
	m0, ok := readMeta(0)
	if ok {
		metas = append(metas, m0)
		if m1, ok := readMeta(int64(m0.pageSize)); ok && m1.pageSize == m0.pageSize {
			metas = append(metas, m1)
		}
	} else {
		// Meta 0 is damaged: find meta 1 at the page size it names, from
		// 1 KiB to 64 KiB, as bbolt does.
		for ps := int64(1024); ps <= 64<<10; ps *= 2 {
			if m1, ok := readMeta(ps); ok && int64(m1.pageSize) == ps {
				metas = append(metas, m1)
				break
			}
		}
	}
	var best meta
	found := false
	for _, m := range metas {
		if m.pageSize >= 1024 && m.pageSize <= 64<<10 && (!found || m.txid > best.txid) {
			best, found = m, true
		}
	}
	if found && best.pages < 1<<40 && uint64(size) < best.pages*best.pageSize {
		return fmt.Errorf("%s: %w: the file is %d bytes, its last commit needs %d (cut short, by a full disk or a bad copy?); move it away to start a new history",
			path, ErrNotStateFile, size, best.pages*best.pageSize)
	}
	return nil
}

// processAlive reports whether process pid exists (as far as this process
// can tell).
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil || pid <= 0 {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// recoverCorrupt turns a panic of bbolt on a damaged file into an error.
func recoverCorrupt(err *error, path string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %w (damaged: %v)", path, ErrNotStateFile, r)
	}
}

// checkMeta verifies the magic and version, initialising a new file.
func (s *Store) checkMeta(host string) (err error) {
	defer recoverCorrupt(&err, s.path)
	check := func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var names []string
			_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
				names = append(names, string(name))
				return nil
			})
			if len(names) == 0 {
				return errEmptyStore
			}
			return fmt.Errorf("%s: %w: a bbolt database of another application (buckets %q); refusing to touch it", s.path, ErrNotStateFile, names)
		}
		if m := meta.Get(keyMagic); string(m) != storeMagic {
			return fmt.Errorf("%s: %w: magic %q, want %q", s.path, ErrNotStateFile, m, storeMagic)
		}
		v := meta.Get(keyVersion)
		if len(v) != 4 {
			return fmt.Errorf("%s: %w: bad version key", s.path, ErrNotStateFile)
		}
		if n := binary.BigEndian.Uint32(v); n != storeVersion {
			return fmt.Errorf("%s: %w: format version %d, this netdumper reads version %d", s.path, ErrNotStateFile, n, storeVersion)
		}
		for _, b := range [][]byte{bucketOpen, bucketClosed, bucketClosedLong, bucketProcs, bucketAddrs} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s: %w: bucket %q missing", s.path, ErrNotStateFile, b)
			}
		}
		s.host = string(meta.Get(keyHost))
		s.seq = getUint64(meta, keySeq)
		s.nextID = getUint64(meta, keyNextID)
		s.lastScan = fromUnixNano(int64(getUint64(meta, keyLastScan)))
		s.created = fromUnixNano(int64(getUint64(meta, keyCreated)))
		return nil
	}
	if s.readOnly {
		err := s.db.View(check)
		if errors.Is(err, errEmptyStore) {
			return fmt.Errorf("%s: %w (empty file)", s.path, ErrNoHistory)
		}
		return err
	}
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return fmt.Errorf("host name: %w", err)
		}
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		err := check(tx)
		if errors.Is(err, errEmptyStore) {
			return s.initialise(tx, host)
		}
		if err != nil {
			return err
		}
		if s.host != host {
			s.log.Warn("host name changed; history is now recorded under the new name",
				"file", s.path, "was", s.host, "now", host)
			s.host = host
			return tx.Bucket(bucketMeta).Put(keyHost, []byte(host))
		}
		return nil
	})
}

var errEmptyStore = errors.New("empty store")

// initialise creates the buckets and meta keys of a new store.
func (s *Store) initialise(tx *bbolt.Tx, host string) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return fmt.Errorf("%s: create meta: %w", s.path, err)
	}
	for _, b := range [][]byte{bucketOpen, bucketClosed, bucketClosedLong, bucketProcs, bucketAddrs} {
		if _, err := tx.CreateBucket(b); err != nil {
			return fmt.Errorf("%s: create %s: %w", s.path, b, err)
		}
	}
	s.host = host
	s.created = time.Now().UTC()
	s.nextID = 1
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], storeVersion)
	for _, kv := range []struct{ k, v []byte }{
		{keyMagic, []byte(storeMagic)},
		{keyVersion, v[:]},
		{keyHost, []byte(host)},
		{keySeq, u64(0)},
		{keyNextID, u64(s.nextID)},
		{keyLastScan, u64(uint64(unixNano(time.Time{})))},
		{keyCreated, u64(uint64(unixNano(s.created)))},
	} {
		if err := meta.Put(kv.k, kv.v); err != nil {
			return fmt.Errorf("%s: write meta: %w", s.path, err)
		}
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getUint64(b *bbolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Host is the host whose history the store holds.
func (s *Store) Host() string { return s.host }

// Seq is the last event sequence number persisted (when opened, for a
// read-only store).
func (s *Store) Seq() uint64 { return s.seq }

// deadEnd is when the intervals still open in a read-only store ended:
// its last scan (zero for a writable store, or one never scanned).
func (s *Store) deadEnd() time.Time {
	if !s.readOnly {
		return time.Time{}
	}
	return s.lastScan
}

// LastScan is the time of the last scan persisted (when opened, for a
// read-only store): open intervals are known to hold until then.
func (s *Store) LastScan() time.Time { return s.lastScan }

// Close closes the store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// view runs fn in a read transaction, turning bbolt panics on damaged
// pages into errors.
func (s *Store) view(fn func(*bbolt.Tx) error) (err error) {
	defer recoverCorrupt(&err, s.path)
	return s.db.View(fn)
}

// update runs fn in a write transaction.
func (s *Store) update(fn func(*bbolt.Tx) error) (err error) {
	if s.readOnly {
		return fmt.Errorf("%s: store is read-only", s.path)
	}
	defer recoverCorrupt(&err, s.path)
	return s.db.Update(fn)
}

// opKind is a change to the store.
type opKind uint8

const (
	opOpen      opKind = iota + 1 // a binding interval starts (b, id)
	opClose                       // it ends (id, until)
	opAddrOpen                    // an address interval starts (a, id)
	opAddrClose                   // it ends (id, until)
	opClosed                      // a whole binding interval, already ended (b, id)
)

// storeOp is one change of a scan.
type storeOp struct {
	kind  opKind
	id    uint64
	until time.Time
	b     Binding
	a     AddrInterval
}

// commit writes the changes of one scan (or of several, after failed
// commits) in one transaction, with the sequence number, next id and scan
// time reached.
func (s *Store) commit(ops []storeOp, seq, nextID uint64, lastScan time.Time) error {
	err := s.update(func(tx *bbolt.Tx) error {
		open, procs, addrs := tx.Bucket(bucketOpen), tx.Bucket(bucketProcs), tx.Bucket(bucketAddrs)
		for i := range ops {
			op := &ops[i]
			switch op.kind {
			case opOpen:
				pk, err := s.putProcess(procs, op.b.Owner)
				if err != nil {
					return err
				}
				// bbolt keeps values until the commit: no buffer reuse.
				if err := open.Put(idKey(op.id), encodeBinding(nil, &op.b, pk)); err != nil {
					return fmt.Errorf("put binding %d: %w", op.id, err)
				}
			case opClosed:
				pk, err := s.putProcess(procs, op.b.Owner)
				if err != nil {
					return err
				}
				rec := encodeBinding(nil, &op.b, pk)
				if err := tx.Bucket(closedBucket(op.b.From, op.b.Until)).Put(closedKey(op.b.Until, op.id), rec); err != nil {
					return fmt.Errorf("put closed binding %d: %w", op.id, err)
				}
			case opClose:
				k := idKey(op.id)
				v := open.Get(k)
				if v == nil {
					s.log.Warn("closing a binding the store does not have", "file", s.path, "id", op.id)
					continue
				}
				rec := slices.Clone(v)
				setRecordUntil(rec, op.until)
				from, _, _ := recordTimes(rec)
				if err := tx.Bucket(closedBucket(fromUnixNano(from), op.until)).Put(closedKey(op.until, op.id), rec); err != nil {
					return fmt.Errorf("close binding %d: %w", op.id, err)
				}
				if err := open.Delete(k); err != nil {
					return fmt.Errorf("close binding %d: %w", op.id, err)
				}
			case opAddrOpen:
				if err := addrs.Put(idKey(op.id), encodeAddr(nil, &op.a)); err != nil {
					return fmt.Errorf("put address %d: %w", op.id, err)
				}
			case opAddrClose:
				k := idKey(op.id)
				v := addrs.Get(k)
				if v == nil {
					continue
				}
				a, err := decodeAddr(v)
				if err != nil {
					return fmt.Errorf("address %d: %w", op.id, err)
				}
				a.Until = op.until
				if err := addrs.Put(k, encodeAddr(nil, &a)); err != nil {
					return fmt.Errorf("close address %d: %w", op.id, err)
				}
			}
		}
		meta := tx.Bucket(bucketMeta)
		for _, kv := range []struct {
			k []byte
			v uint64
		}{{keySeq, seq}, {keyNextID, nextID}, {keyLastScan, uint64(unixNano(lastScan))}} {
			if err := meta.Put(kv.k, u64(kv.v)); err != nil {
				return fmt.Errorf("write meta: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit %s: %w", s.path, err)
	}
	s.seq, s.nextID, s.lastScan = seq, nextID, lastScan
	return nil
}

// closedBucket is the bucket of an interval that ended: closed-long for
// those over longInterval (or without a start).
func closedBucket(from, until time.Time) []byte {
	if from.IsZero() || until.Sub(from) > longInterval {
		return bucketClosedLong
	}
	return bucketClosed
}

// putProcess stores p's record if absent and returns its key. A 32-bit
// hash collision (same pid and start time, other details) moves to the
// next key.
func (s *Store) putProcess(procs *bbolt.Bucket, p *Process) ([procKeyLen]byte, error) {
	pk := procKey(p)
	if p == nil {
		return pk, nil
	}
	rec := encodeProcess(nil, p)
	for range 8 {
		old := procs.Get(pk[:])
		if old == nil {
			if err := procs.Put(slices.Clone(pk[:]), rec); err != nil {
				return pk, fmt.Errorf("put process %d: %w", p.PID, err)
			}
			return pk, nil
		}
		if bytes.Equal(old, rec) {
			return pk, nil
		}
		h := binary.BigEndian.Uint32(pk[12:])
		binary.BigEndian.PutUint32(pk[12:], h+1)
	}
	return pk, fmt.Errorf("process %d: too many owner key collisions", p.PID)
}

// storedBinding is an open binding read back from the store.
type storedBinding struct {
	id uint64
	b  Binding
}

// storedAddr is an open address interval read back from the store.
type storedAddr struct {
	id uint64
	a  AddrInterval
}

// loadOpen returns the open bindings and address intervals, for a
// restarted tracker to re-match.
func (s *Store) loadOpen() ([]storedBinding, []storedAddr, error) {
	var bs []storedBinding
	var as []storedAddr
	err := s.view(func(tx *bbolt.Tx) error {
		procs := newProcCache(tx.Bucket(bucketProcs))
		c := tx.Bucket(bucketOpen).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			b, err := procs.binding(v)
			if err != nil {
				return fmt.Errorf("open binding %x: %w", k, err)
			}
			b.Host = s.host
			bs = append(bs, storedBinding{id: binary.BigEndian.Uint64(k), b: b})
		}
		return tx.Bucket(bucketAddrs).ForEach(func(k, v []byte) error {
			a, err := decodeAddr(v)
			if err != nil {
				return fmt.Errorf("address %x: %w", k, err)
			}
			if a.Until.IsZero() {
				as = append(as, storedAddr{id: binary.BigEndian.Uint64(k), a: a})
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return bs, as, nil
}

// procCache resolves owner keys during one read, sharing *Process values.
type procCache struct {
	b *bbolt.Bucket
	m map[[procKeyLen]byte]*Process
}

func newProcCache(b *bbolt.Bucket) *procCache {
	return &procCache{b: b, m: make(map[[procKeyLen]byte]*Process)}
}

// binding decodes a binding record and resolves its owner.
func (c *procCache) binding(v []byte) (Binding, error) {
	b, pk, err := decodeBinding(v)
	if err != nil {
		return b, err
	}
	if pk == ([procKeyLen]byte{}) {
		return b, nil
	}
	if p, ok := c.m[pk]; ok {
		b.Owner = p
		return b, nil
	}
	pv := c.b.Get(pk[:])
	if pv == nil {
		return b, fmt.Errorf("owner %x: %w (process record missing)", pk, errBadRecord)
	}
	p, err := decodeProcess(pv)
	if err != nil {
		return b, fmt.Errorf("owner %x: %w", pk, err)
	}
	c.m[pk] = p
	b.Owner = p
	return b, nil
}

// History calls fn for every binding interval that overlaps [from, to]
// (a zero from or to leaves that side open), open ones first, in no
// particular order otherwise. Records are read in short transactions and
// fn runs outside them, so a slow fn never holds the store; an interval
// that closes during the walk is reported once.
//
// A store opened read-only has no tracker writing it (serve holds it
// exclusively): the intervals still open in it end at its last scan, the
// last time anything saw them, instead of lasting for ever.
func (s *Store) History(ctx context.Context, from, to time.Time, fn func(Binding) error) error {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		lo = from.UnixNano()
	}
	if !to.IsZero() {
		hi = to.UnixNano()
	}
	if end := s.deadEnd(); !end.IsZero() {
		report := fn
		fn = func(b Binding) error {
			if b.Until.IsZero() {
				// Events after the last scan open intervals later than it:
				// those end where they began.
				b.Until = end
				if b.Until.Before(b.From) {
					b.Until = b.From
				}
				if b.Until.UnixNano() <= lo && lo != math.MinInt64 {
					return nil // over before the window, as closed ones
				}
			}
			return report(b)
		}
	}
	// Open intervals overlap when they started by hi.
	seenOpen := make(map[uint64]struct{})
	err := s.walk(ctx, bucketOpen, nil, func(k, v []byte) (bool, bool) {
		f, _, ok := recordTimes(v)
		if !ok {
			return true, true
		}
		if f <= hi {
			seenOpen[binary.BigEndian.Uint64(k)] = struct{}{}
			return true, true
		}
		return false, true
	}, fn)
	if err != nil {
		return err
	}
	// Closed intervals overlap when they ended after lo and started by
	// hi. Keys sort by end; short intervals cannot start by hi and end
	// after hi+longInterval.
	start := closedKey(fromUnixNano(lo), 0)
	if lo == math.MinInt64 {
		start = nil
	}
	closedFilter := func(limit int64) func(k, v []byte) (bool, bool) {
		return func(k, v []byte) (bool, bool) {
			f, u, ok := recordTimes(v)
			if !ok {
				return true, true
			}
			if u > limit {
				return false, false
			}
			if _, dup := seenOpen[binary.BigEndian.Uint64(k[8:])]; dup {
				return false, true
			}
			return u > lo && f <= hi, true
		}
	}
	shortLimit := int64(math.MaxInt64)
	if hi < math.MaxInt64-int64(longInterval) {
		shortLimit = hi + int64(longInterval)
	}
	if err := s.walk(ctx, bucketClosed, start, closedFilter(shortLimit), fn); err != nil {
		return err
	}
	return s.walk(ctx, bucketClosedLong, start, closedFilter(math.MaxInt64), fn)
}

// walk visits the records of bucket from key start in chunks: keep says
// whether to report a record and whether to go on.
func (s *Store) walk(ctx context.Context, bucket, start []byte, keep func(k, v []byte) (report, more bool), fn func(Binding) error) error {
	var chunk []Binding
	next := start
	for {
		chunk = chunk[:0]
		done := true
		err := s.view(func(tx *bbolt.Tx) error {
			procs := newProcCache(tx.Bucket(bucketProcs))
			c := tx.Bucket(bucket).Cursor()
			var k, v []byte
			if next == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(next)
			}
			for ; k != nil; k, v = c.Next() {
				if len(chunk) == historyChunk {
					next = slices.Clone(k)
					done = false
					return nil
				}
				report, more := keep(k, v)
				if !more {
					return nil
				}
				if !report {
					continue
				}
				b, err := procs.binding(v)
				if err != nil {
					return fmt.Errorf("%s record %x: %w", bucket, k, err)
				}
				b.Host = s.host
				chunk = append(chunk, b)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		for _, b := range chunk {
			if err := fn(b); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// AddrHistory returns the host's address intervals that overlap [from,
// to] (zero: open side), sorted by start.
func (s *Store) AddrHistory(ctx context.Context, from, to time.Time) ([]AddrInterval, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []AddrInterval
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAddrs).ForEach(func(k, v []byte) error {
			a, err := decodeAddr(v)
			if err != nil {
				return fmt.Errorf("address %x: %w", k, err)
			}
			if end := s.deadEnd(); a.Until.IsZero() && !end.IsZero() {
				a.Until = end // no tracker has seen it since (see History)
				if a.Until.Before(a.From) {
					a.Until = a.From
				}
			}
			if (to.IsZero() || !a.From.After(to)) && (from.IsZero() || a.Until.IsZero() || a.Until.After(from)) {
				out = append(out, a)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	sortAddrs(out)
	return out, nil
}

// sortAddrs orders address intervals by start, then address.
func sortAddrs(as []AddrInterval) {
	slices.SortFunc(as, func(a, b AddrInterval) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
}

// Export writes the history overlapping [from, to] as a bindings file
// (see the package documentation) with this store's host.
func (s *Store) Export(ctx context.Context, w io.Writer, from, to time.Time) error {
	return exportHistory(ctx, w, s.host, from, to, s.AddrHistory, s.History)
}

// exportHistory streams one host's history into a bindings file.
func exportHistory(ctx context.Context, w io.Writer, host string, from, to time.Time,
	addrs func(context.Context, time.Time, time.Time) ([]AddrInterval, error),
	history func(context.Context, time.Time, time.Time, func(Binding) error) error) error {
	as, err := addrs(ctx, from, to)
	if err != nil {
		return err
	}
	fw := NewFileWriter(w)
	if err := fw.StartHost(host, as); err != nil {
		return err
	}
	if err := history(ctx, from, to, func(b Binding) error { return fw.WriteBinding(&b) }); err != nil {
		return err
	}
	return fw.Close()
}

// expire deletes the intervals that ended before cutoff and the process
// records no interval refers to any more. It returns how many intervals
// it deleted. Only the writer calls it (between commits).
func (s *Store) expire(ctx context.Context, cutoff time.Time) (int, error) {
	limit := closedKey(cutoff, 0)
	total := 0
	for _, bucket := range [][]byte{bucketClosed, bucketClosedLong} {
		for {
			n := 0
			err := s.update(func(tx *bbolt.Tx) error {
				c := tx.Bucket(bucket).Cursor()
				for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0 && n < expireChunk; k, _ = c.First() {
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return total, fmt.Errorf("expire %s: %w", s.path, err)
			}
			total += n
			if n < expireChunk {
				break
			}
			if err := ctx.Err(); err != nil {
				return total, err
			}
		}
	}
	err := s.update(func(tx *bbolt.Tx) error {
		// Address intervals are few: one pass.
		addrs := tx.Bucket(bucketAddrs)
		var old [][]byte
		if err := addrs.ForEach(func(k, v []byte) error {
			a, err := decodeAddr(v)
			if err != nil {
				return fmt.Errorf("address %x: %w", k, err)
			}
			if !a.Until.IsZero() && a.Until.Before(cutoff) {
				old = append(old, slices.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := addrs.Delete(k); err != nil {
				return err
			}
		}
		// Sweep process records nothing refers to.
		used := make(map[[procKeyLen]byte]struct{})
		for _, bucket := range [][]byte{bucketOpen, bucketClosed, bucketClosedLong} {
			if err := tx.Bucket(bucket).ForEach(func(_, v []byte) error {
				if len(v) >= bindingFixed {
					used[[procKeyLen]byte(v[offOwner:offOwner+procKeyLen])] = struct{}{}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		procs := tx.Bucket(bucketProcs)
		var unused [][]byte
		if err := procs.ForEach(func(k, _ []byte) error {
			if len(k) != procKeyLen {
				return nil
			}
			if _, ok := used[[procKeyLen]byte(k)]; !ok {
				unused = append(unused, slices.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range unused {
			if err := procs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return total, fmt.Errorf("expire %s: %w", s.path, err)
	}
	return total, nil
}

// compactFile rewrites the store into a new file when it is at least
// minSize bytes and most of it is free pages, and reopens it. It runs
// when a writer opens the store. Compaction only saves disk space: when
// the copy cannot be made (a full disk, say), that is logged and the
// store goes on as it was; only a failure to reopen it is an error.
func (s *Store) compactFile(minSize int64) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.path, err)
	}
	free := int64(s.db.Stats().FreePageN) * int64(s.db.Info().PageSize)
	if fi.Size() < minSize || float64(free) < compactFreeRatio*float64(fi.Size()) {
		return nil
	}
	if err := s.compactCopy(); err != nil {
		s.log.Warn("could not compact the history file; it keeps its size", "file", s.path, "err", err)
		return nil
	}
	s.db.Close()
	if err := s.open(DefaultLockTimeout); err != nil {
		return fmt.Errorf("reopen after compaction: %w", err)
	}
	nfi, _ := os.Stat(s.path)
	if nfi != nil {
		s.log.Info("compacted history file", "file", s.path, "before", fi.Size(), "after", nfi.Size())
	}
	return nil
}

// compactCopy writes the compacted copy of the store and renames it over
// the file; on error the file is as it was.
func (s *Store) compactCopy() error {
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, boltOptions(false, time.Second))
	if err != nil {
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	if err := bbolt.Compact(dst, s.db, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	return nil
}
