package ext4

// Journal (jbd2) replay. The format is described in the kernel's
// Documentation/filesystems/ext4/journal.rst; the recovery follows the
// three passes of jbd2's recovery (find the end of the log, collect
// revocations, write the logged blocks home).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// jbd2 block types (JournalHeader.BlockType).
const (
	JournalDescriptorBlock = 1
	JournalCommitBlock     = 2
	JournalSuperblockV1    = 3
	JournalSuperblockV2    = 4
	JournalRevokeBlock     = 5
)

// jbd2 feature bits (JournalSuperblock.FeatureCompat / FeatureIncompat).
const (
	JournalCompatChecksum      = 0x1 // v1 commit-block checksums (crc32)
	JournalIncompatRevoke      = 0x1
	JournalIncompat64bit       = 0x2
	JournalIncompatAsyncCommit = 0x4
	JournalIncompatCsumV2      = 0x8
	JournalIncompatCsumV3      = 0x10
	JournalIncompatFastCommit  = 0x20

	journalKnownIncompat = JournalIncompatRevoke | JournalIncompat64bit | JournalIncompatAsyncCommit |
		JournalIncompatCsumV2 | JournalIncompatCsumV3 | JournalIncompatFastCommit
)

// Descriptor block tag flags.
const (
	JournalFlagEscape   = 0x1 // the block began with the jbd2 magic, zeroed in the log
	JournalFlagSameUUID = 0x2 // no 16-byte UUID follows the tag
	JournalFlagDeleted  = 0x4
	JournalFlagLastTag  = 0x8
)

const (
	journalCsumCRC32C       = 4   // JournalSuperblock.ChecksumType for crc32c
	journalDefaultFCBlocks  = 256 // fast-commit blocks when s_num_fc_blks is 0
	journalSBChecksumOffset = 0xFC
	maxJournalRuns          = 1 << 20 // physical extents of the journal inode
	maxJournalTags          = 1 << 23 // logged blocks remembered during the scan
	maxJournalRevokes       = 1 << 22 // revoke records remembered
	fcTagHead               = 9       // ext4 fast-commit head tag
)

// ErrJournal is wrapped by errors about a journal that cannot be replayed.
var ErrJournal = errors.New("ext4: journal cannot be replayed")

// ReplayStats describes what Replay did.
type ReplayStats struct {
	FirstSequence uint32 // s_sequence the log started at
	NextSequence  uint32 // s_sequence after replay (last committed + 1)
	Transactions  int    // committed transactions found
	Replayed      int    // blocks written to their home location
	Revoked       int    // logged blocks skipped because a revoke record covers them
	BadChecksums  int    // logged blocks skipped because their checksum did not match
	OutOfRange    int    // logged blocks skipped because their home is beyond the filesystem
	Notes         []string
}

// jrun maps n journal blocks from logical block l to physical block p.
type jrun struct{ l, p, n uint64 }

// journal is an internal journal opened for recovery.
type journal struct {
	f           *FS
	runs        []jrun
	sb          JournalSuperblock
	sbBlock     uint64 // physical block of the journal superblock
	bs          int64
	first, last uint64 // the log occupies journal blocks [first, last)
	maxLen      uint64
	csum        bool // v2 or v3 checksums
	csumV3      bool
	is64        bool
	seed        uint32
	tagBytes    int
}

// journalInum returns the internal journal's inode number, or an error for
// external journals and filesystems without a journal.
func journalInum(sb *Superblock) (uint32, error) {
	if sb.FeatureIncompat&IncompatJournalDev != 0 {
		return 0, fmt.Errorf("ext4: this is an external journal device (journal_dev), not a filesystem: %w", ErrUnsupported)
	}
	if sb.FeatureCompat&CompatHasJournal == 0 {
		return 0, fmt.Errorf("ext4: needs_recovery is set but the filesystem has no journal (has_journal); run e2fsck -f: %w", ErrJournal)
	}
	if sb.JournalInum == 0 {
		return 0, fmt.Errorf("ext4: external journal (journal device %#x, UUID %s) not supported; replay it with e2fsck -f -j DEVICE: %w",
			sb.JournalDev, formatUUID(sb.JournalUUID), ErrUnsupported)
	}
	return sb.JournalInum, nil
}

// NeedsRecovery reports whether the journal holds transactions to replay:
// the needs_recovery feature is set. It also reports true when the flag
// is set but the journal is empty (s_start == 0), because Replay must then
// still clear the flag; it reports false when the flag is clear, whatever
// the journal says. External journals report true (Replay refuses them).
func NeedsRecovery(r io.ReaderAt, size int64) (bool, error) {
	sb, _, err := readSuperblock(r, size)
	if err != nil {
		return false, err
	}
	if sb.FeatureIncompat&IncompatRecover == 0 {
		return false, nil
	}
	if _, err := sb.geometry(); err != nil {
		return false, err
	}
	return true, nil
}

// Replay replays the internal journal into the filesystem held in the first
// size bytes of rw and clears needs_recovery, as e2fsck and the kernel do.
// Transactions are replayed from s_start/s_sequence up to the last one with
// a valid commit block; revoked blocks are skipped; v2/v3 checksums
// (descriptor, revoke and commit blocks, logged blocks) are verified. The
// journal superblock is reset (s_start = 0, s_sequence = last + 1) and the
// primary superblock, re-read after the replay in case a logged block held
// it, loses needs_recovery (and keeps its checksum right). Fast commits are
// not replayed (a note says so). External journals are refused.
//
// A filesystem without needs_recovery is left alone (zero stats, no error).
func Replay(rw ReadWriterAt, size int64) (ReplayStats, error) {
	var st ReplayStats
	sb, _, err := readSuperblock(rw, size)
	if err != nil {
		return st, err
	}
	if sb.FeatureIncompat&IncompatRecover == 0 {
		return st, nil
	}
	if _, err := journalInum(sb); err != nil {
		return st, err
	}
	f, err := New(rw, size, WithoutVerify())
	if err != nil {
		return st, fmt.Errorf("ext4: opening the filesystem to replay its journal: %w", err)
	}
	j, err := openJournal(f)
	if err != nil {
		return st, err
	}
	st.FirstSequence = j.sb.Sequence
	st.NextSequence = j.sb.Sequence
	failed := false
	if j.sb.Start != 0 {
		log, err := j.scan(&st)
		if err != nil {
			return st, err
		}
		if err := j.replay(rw, log, &st); err != nil {
			return st, err
		}
		st.NextSequence = log.next
		failed = st.BadChecksums > 0 || st.OutOfRange > 0
		if j.sb.FeatureIncompat&JournalIncompatFastCommit != 0 {
			j.noteFastCommits(log.next, &st)
		}
	}
	// Reset the journal superblock.
	errno := j.sb.Errno
	j.sb.Start = 0
	j.sb.Sequence = st.NextSequence
	j.sb.Errno = 0
	if err := j.writeSuper(rw); err != nil {
		return st, err
	}
	// Clear needs_recovery in the superblock as it is now on disk.
	nsb, _, err := repairReadSuper(rw)
	if err != nil {
		return st, err
	}
	nsb.FeatureIncompat &^= IncompatRecover
	if failed {
		nsb.State &^= StateValid
		st.Notes = append(st.Notes, "some logged blocks could not be replayed: run e2fsck -f before trusting the filesystem")
	}
	if errno != 0 {
		nsb.State |= StateErrors
		st.Notes = append(st.Notes, fmt.Sprintf("the journal recorded error %d: the filesystem is marked as having errors; run e2fsck -f", errno))
	}
	if err := repairWriteSuper(rw, nsb); err != nil {
		return st, err
	}
	return st, nil
}

// openJournal maps the journal inode and reads the journal superblock.
func openJournal(f *FS) (*journal, error) {
	inum, err := journalInum(&f.sb)
	if err != nil {
		return nil, err
	}
	in, err := f.readInode(inum)
	if err != nil {
		return nil, fmt.Errorf("ext4: journal inode %d: %w (run e2fsck -f)", inum, errors.Join(err, ErrJournal))
	}
	j := &journal{f: f, bs: f.blockSize}
	nblk := uint64(in.size()) / uint64(f.blockSize)
	if nblk < 2 || nblk > f.blocks {
		return nil, journalErr(-1, "journal inode %d is %d blocks long", inum, nblk)
	}
	m := newMapper(f, in)
	for l := uint64(0); l < nblk; {
		r, err := m.lookup(l)
		if err != nil {
			return nil, fmt.Errorf("ext4: journal inode %d block map: %w", inum, err)
		}
		if r.zero {
			return nil, journalErr(-1, "journal inode %d has a hole at journal block %d", inum, l)
		}
		n := min(r.n, nblk-l)
		if k := len(j.runs); k > 0 && j.runs[k-1].l+j.runs[k-1].n == l && j.runs[k-1].p+j.runs[k-1].n == r.pblk {
			j.runs[k-1].n += n
		} else {
			if len(j.runs) >= maxJournalRuns {
				return nil, journalErr(-1, "journal inode %d has more than %d fragments", inum, maxJournalRuns)
			}
			j.runs = append(j.runs, jrun{l: l, p: r.pblk, n: n})
		}
		l += n
	}
	j.sbBlock = j.runs[0].p
	raw := make([]byte, j.bs)
	if err := f.readBlock(raw, j.sbBlock); err != nil {
		return nil, err
	}
	if _, err := binary.Decode(raw, binary.BigEndian, &j.sb); err != nil {
		return nil, fmt.Errorf("ext4: decoding journal superblock: %w", err)
	}
	jsb := &j.sb
	blk := int64(j.sbBlock)
	if jsb.Header.Magic != JournalMagic {
		return nil, journalErr(blk, "journal superblock has no jbd2 magic")
	}
	switch jsb.Header.BlockType {
	case JournalSuperblockV1:
		jsb.FeatureCompat, jsb.FeatureIncompat, jsb.FeatureROCompat = 0, 0, 0
	case JournalSuperblockV2:
	default:
		return nil, journalErr(blk, "journal superblock has block type %d", jsb.Header.BlockType)
	}
	if int64(jsb.BlockSize) != j.bs {
		return nil, journalErr(blk, "journal block size %d differs from the filesystem's %d", jsb.BlockSize, j.bs)
	}
	if bad := jsb.FeatureIncompat &^ journalKnownIncompat; bad != 0 {
		return nil, journalErr(blk, "unknown journal incompatible features %#x", bad)
	}
	j.maxLen = uint64(jsb.MaxLen)
	if j.maxLen > nblk || j.maxLen < 2 {
		return nil, journalErr(blk, "journal length %d does not fit the journal inode (%d blocks)", jsb.MaxLen, nblk)
	}
	j.first, j.last = uint64(jsb.First), j.maxLen
	if jsb.FeatureIncompat&JournalIncompatFastCommit != 0 {
		fc := uint64(jsb.NumFCBlocks)
		if fc == 0 {
			fc = journalDefaultFCBlocks
		}
		if fc >= j.last {
			return nil, journalErr(blk, "fast-commit area of %d blocks fills the journal", fc)
		}
		j.last -= fc
	}
	if j.first == 0 || j.first >= j.last {
		return nil, journalErr(blk, "journal log start %d outside 1..%d", jsb.First, j.last)
	}
	if jsb.Start != 0 && (uint64(jsb.Start) < j.first || uint64(jsb.Start) >= j.last) {
		return nil, journalErr(blk, "journal s_start %d outside the log %d..%d", jsb.Start, j.first, j.last)
	}
	j.csumV3 = jsb.FeatureIncompat&JournalIncompatCsumV3 != 0
	j.csum = j.csumV3 || jsb.FeatureIncompat&JournalIncompatCsumV2 != 0
	j.is64 = jsb.FeatureIncompat&JournalIncompat64bit != 0
	if j.csum {
		if jsb.ChecksumType != journalCsumCRC32C {
			return nil, journalErr(blk, "journal checksum type %d is not crc32c", jsb.ChecksumType)
		}
		if got := j.superChecksum(raw); got != jsb.Checksum {
			return nil, journalErr(blk, "journal superblock checksum %#x, computed %#x", jsb.Checksum, got)
		}
		j.seed = crc32c(^uint32(0), jsb.UUID[:])
	}
	switch {
	case j.csumV3:
		j.tagBytes = 16
	default:
		j.tagBytes = 12
		if j.csum {
			j.tagBytes += 2
		}
		if !j.is64 {
			j.tagBytes -= 4
		}
	}
	return j, nil
}

func journalErr(blk int64, format string, args ...any) error {
	return &FormatError{Block: blk, Off: -1, What: "journal",
		Msg: fmt.Sprintf(format, args...) + "; run e2fsck -f to recover it", Err: ErrJournal}
}

// superChecksum computes the journal superblock checksum over the first
// 1024 bytes of raw with the checksum field taken as zero.
func (j *journal) superChecksum(raw []byte) uint32 {
	c := crc32c(^uint32(0), raw[:journalSBChecksumOffset])
	c = crc32c(c, []byte{0, 0, 0, 0})
	return crc32c(c, raw[journalSBChecksumOffset+4:1024])
}

// phys maps a journal block to a filesystem block.
func (j *journal) phys(l uint64) (uint64, error) {
	i, found := slices.BinarySearchFunc(j.runs, l, func(r jrun, l uint64) int {
		switch {
		case r.l+r.n <= l:
			return -1
		case r.l > l:
			return 1
		}
		return 0
	})
	if !found || i >= len(j.runs) {
		return 0, journalErr(-1, "journal block %d beyond the journal", l)
	}
	r := j.runs[i]
	return r.p + (l - r.l), nil
}

// read reads journal block l into buf.
func (j *journal) read(buf []byte, l uint64) error {
	p, err := j.phys(l)
	if err != nil {
		return err
	}
	return j.f.readBlock(buf, p)
}

// next returns the log block after l, wrapping at the end of the log.
func (j *journal) next(l, by uint64) uint64 {
	l += by
	span := j.last - j.first
	if l >= j.last {
		l = j.first + (l-j.first)%span
	}
	return l
}

// writeSuper writes the journal superblock back with its checksum.
func (j *journal) writeSuper(w io.WriterAt) error {
	raw := make([]byte, 1024)
	if _, err := binary.Encode(raw, binary.BigEndian, &j.sb); err != nil {
		return fmt.Errorf("ext4: encoding journal superblock: %w", err)
	}
	if j.csum {
		j.sb.Checksum = j.superChecksum(raw)
		binary.BigEndian.PutUint32(raw[journalSBChecksumOffset:], j.sb.Checksum)
	}
	return repairWriteAt(w, raw, int64(j.sbBlock)*j.bs, j.bs, "journal superblock")
}

// jtag is one logged block: its place in the log, its home, its
// transaction and its tag.
type jtag struct {
	logBlk uint64
	home   uint64
	seq    uint32
	flags  uint32
	csum   uint32
}

type jrevoke struct {
	blk uint64
	seq uint32
}

// jlog is the result of the scan: the committed transactions' logged
// blocks and revoke records, and the first sequence not committed.
type jlog struct {
	tags    []jtag
	revokes []jrevoke
	next    uint32
}

// tidGE reports whether transaction a is b or later (sequence numbers wrap).
func tidGE(a, b uint32) bool { return int32(a-b) >= 0 }

// blockCsumOK verifies the crc32c tail of a descriptor or revoke block.
func (j *journal) blockCsumOK(buf []byte) bool {
	n := len(buf)
	c := crc32c(j.seed, buf[:n-4])
	c = crc32c(c, []byte{0, 0, 0, 0})
	return c == binary.BigEndian.Uint32(buf[n-4:])
}

// commitCsumOK verifies a v2/v3 commit block: the checksum sits in the
// first word of h_chksum, at byte 16.
func (j *journal) commitCsumOK(buf []byte) bool {
	c := crc32c(j.seed, buf[:16])
	c = crc32c(c, []byte{0, 0, 0, 0})
	c = crc32c(c, buf[20:])
	return c == binary.BigEndian.Uint32(buf[16:])
}

// parseTags decodes the tags of a descriptor block.
func (j *journal) parseTags(buf []byte, seq uint32, logBlk uint64, out []jtag) ([]jtag, error) {
	be := binary.BigEndian
	end := len(buf)
	if j.csum {
		end -= 4
	}
	off := 12
	first := true
	for i := 0; ; i++ {
		if off+j.tagBytes > end {
			if first {
				return out, journalErr(-1, "descriptor block at journal block %d holds no tag", logBlk)
			}
			break
		}
		t := buf[off:]
		var tag jtag
		tag.home = uint64(be.Uint32(t))
		if j.csumV3 {
			tag.flags = be.Uint32(t[4:])
			if j.is64 {
				tag.home |= uint64(be.Uint32(t[8:])) << 32
			}
			tag.csum = be.Uint32(t[12:])
		} else {
			tag.csum = uint32(be.Uint16(t[4:]))
			tag.flags = uint32(be.Uint16(t[6:]))
			if j.is64 {
				tag.home |= uint64(be.Uint32(t[8:])) << 32
			}
		}
		off += j.tagBytes
		if tag.flags&JournalFlagSameUUID == 0 {
			off += 16
		}
		tag.seq = seq
		tag.logBlk = uint64(i) // index within the transaction's data blocks, fixed up by the caller
		if len(out) >= maxJournalTags {
			return out, journalErr(-1, "more than %d logged blocks", maxJournalTags)
		}
		out = append(out, tag)
		first = false
		if tag.flags&JournalFlagLastTag != 0 || off > end {
			break
		}
	}
	return out, nil
}

// scan walks the log from s_start, collecting the logged blocks and
// revoke records of every committed transaction. The log ends at the
// first block that is not a jbd2 block of the expected sequence, at a
// block whose checksum fails, or after a whole journal's worth of blocks.
func (j *journal) scan(st *ReplayStats) (*jlog, error) {
	be := binary.BigEndian
	buf := make([]byte, j.bs)
	log := &jlog{next: j.sb.Sequence}
	seq := j.sb.Sequence
	blk := uint64(j.sb.Start)
	span := j.last - j.first
	var pendTags []jtag
	var pendRevokes []jrevoke
	// v1 checksums (JournalCompatChecksum): crc32_be over each
	// transaction's descriptor and data blocks, checked at its commit.
	v1 := j.sb.FeatureCompat&JournalCompatChecksum != 0 && !j.csum
	v1Sum, v1Seen := ^uint32(0), false
	dbuf := make([]byte, j.bs)
	note := func(format string, args ...any) {
		st.Notes = append(st.Notes, fmt.Sprintf(format, args...))
	}
	for visited := uint64(0); visited < span; {
		if err := j.read(buf, blk); err != nil {
			return nil, err
		}
		visited++
		if be.Uint32(buf) != JournalMagic || be.Uint32(buf[8:]) != seq {
			break
		}
		switch be.Uint32(buf[4:]) {
		case JournalDescriptorBlock:
			if j.csum && !j.blockCsumOK(buf) {
				note("descriptor block at journal block %d (transaction %d) has a bad checksum: log ends there", blk, seq)
				return log, nil
			}
			n0 := len(pendTags)
			var err error
			pendTags, err = j.parseTags(buf, seq, blk, pendTags)
			if err != nil {
				note("%v: log ends there", err)
				return log, nil
			}
			cnt := uint64(len(pendTags) - n0)
			if cnt >= span {
				note("descriptor block at journal block %d lists %d blocks, more than the log holds: log ends there", blk, cnt)
				return log, nil
			}
			if v1 {
				v1Sum = crc32BE(v1Sum, buf)
			}
			for i := n0; i < len(pendTags); i++ {
				pendTags[i].logBlk = j.next(blk, 1+pendTags[i].logBlk)
				if v1 {
					if err := j.read(dbuf, pendTags[i].logBlk); err != nil {
						return nil, err
					}
					v1Sum = crc32BE(v1Sum, dbuf)
				}
			}
			visited += cnt
			blk = j.next(blk, 1+cnt)
			continue
		case JournalCommitBlock:
			if j.csum && !j.commitCsumOK(buf) {
				note("commit block at journal block %d (transaction %d) has a bad checksum: log ends there", blk, seq)
				return log, nil
			}
			if v1 {
				typ, sz, found := buf[12], buf[13], be.Uint32(buf[16:])
				switch {
				case typ == 1 && sz == 4 && found == v1Sum:
					v1Seen = true
				case typ == 0 && sz == 0 && found == 0 && !v1Seen:
				default:
					note("commit block at journal block %d (transaction %d) has a bad checksum: log ends there", blk, seq)
					return log, nil
				}
				v1Sum = ^uint32(0)
			}
			log.tags = append(log.tags, pendTags...)
			log.revokes = append(log.revokes, pendRevokes...)
			pendTags, pendRevokes = pendTags[:0], pendRevokes[:0]
			st.Transactions++
			seq++
			log.next = seq
		case JournalRevokeBlock:
			if j.csum && !j.blockCsumOK(buf) {
				note("revoke block at journal block %d (transaction %d) has a bad checksum: log ends there", blk, seq)
				return log, nil
			}
			count := int(be.Uint32(buf[12:]))
			limit := len(buf)
			if j.csum {
				limit -= 4
			}
			if count < 16 || count > limit {
				note("revoke block at journal block %d has a bad record size %d: log ends there", blk, count)
				return log, nil
			}
			rsize := 4
			if j.is64 {
				rsize = 8
			}
			for off := 16; off+rsize <= count; off += rsize {
				var b uint64
				if j.is64 {
					b = be.Uint64(buf[off:])
				} else {
					b = uint64(be.Uint32(buf[off:]))
				}
				if len(pendRevokes)+len(log.revokes) >= maxJournalRevokes {
					return nil, journalErr(-1, "more than %d revoke records", maxJournalRevokes)
				}
				pendRevokes = append(pendRevokes, jrevoke{blk: b, seq: seq})
			}
		default:
			note("journal block %d has unknown block type %d: log ends there", blk, be.Uint32(buf[4:]))
			return log, nil
		}
		blk = j.next(blk, 1)
	}
	return log, nil
}

// replay writes every committed logged block home unless a revoke record
// of the same or a later transaction covers it.
func (j *journal) replay(w io.WriterAt, log *jlog, st *ReplayStats) error {
	revoked := make(map[uint64]uint32, min(len(log.revokes), 1<<16))
	for _, r := range log.revokes {
		if old, ok := revoked[r.blk]; !ok || tidGE(r.seq, old) {
			revoked[r.blk] = r.seq
		}
	}
	buf := make([]byte, j.bs)
	var seqBuf [4]byte
	for _, t := range log.tags {
		if rs, ok := revoked[t.home]; ok && tidGE(rs, t.seq) {
			st.Revoked++
			continue
		}
		if t.home >= j.f.blocks {
			st.OutOfRange++
			st.Notes = append(st.Notes, fmt.Sprintf("transaction %d logs block %d beyond the filesystem end (%d blocks): skipped", t.seq, t.home, j.f.blocks))
			continue
		}
		if err := j.read(buf, t.logBlk); err != nil {
			return err
		}
		if j.csum {
			binary.BigEndian.PutUint32(seqBuf[:], t.seq)
			c := crc32c(crc32c(j.seed, seqBuf[:]), buf)
			if !j.csumV3 {
				c &= 0xFFFF
			}
			if c != t.csum {
				st.BadChecksums++
				st.Notes = append(st.Notes, fmt.Sprintf("logged copy of block %d (transaction %d, journal block %d) has a bad checksum: skipped", t.home, t.seq, t.logBlk))
				continue
			}
		}
		if t.flags&JournalFlagEscape != 0 {
			binary.BigEndian.PutUint32(buf, JournalMagic)
		}
		if err := repairWriteAt(w, buf, int64(t.home)*j.bs, j.bs, "replayed block"); err != nil {
			return err
		}
		st.Replayed++
	}
	return nil
}

// noteFastCommits adds a note when the fast-commit area holds commits that
// follow the replayed log (they are not replayed).
func (j *journal) noteFastCommits(next uint32, st *ReplayStats) {
	buf := make([]byte, j.bs)
	if err := j.read(buf, j.last+1); err != nil { // the fast-commit area starts one block after the log
		return
	}
	le := binary.LittleEndian
	if le.Uint16(buf) == fcTagHead && le.Uint16(buf[2:]) >= 8 && le.Uint32(buf[8:]) == next {
		st.Notes = append(st.Notes, "the fast-commit area holds commits after the last full transaction; they are not replayed "+
			"(the filesystem is left as of the last full commit; e2fsck -f would replay them)")
	}
}

// crc32BETable is the MSB-first CRC-32 table (polynomial 0x04C11DB7) of
// the kernel's crc32_be, used by v1 journal checksums.
var crc32BETable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc32BE is the kernel's crc32_be(crc, p): no inversion in or out.
func crc32BE(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc = crc<<8 ^ crc32BETable[byte(crc>>24)^b]
	}
	return crc
}
