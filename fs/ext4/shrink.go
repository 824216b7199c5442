package ext4

import (
	"errors"
	"fmt"
	"io"
)

// Errors of the shrink engine, matched with errors.Is.
var (
	// ErrNeedsRecovery is returned when the journal holds transactions that
	// were never written to the filesystem: replay it (Replay) first.
	ErrNeedsRecovery = errors.New("ext4: journal needs recovery; replay it before resizing")
	// ErrCannotShrink wraps every refusal of PlanShrink and Shrink: a
	// feature the engine does not handle, a filesystem with errors, a
	// target below the minimum size.
	ErrCannotShrink = errors.New("ext4: cannot shrink")
)

// ShrinkProgress receives the number of blocks copied so far and the total.
type ShrinkProgress interface {
	Update(done, total int64)
}

// ShrinkOptions tunes Shrink. The zero value is ready to use.
type ShrinkOptions struct {
	// Progress, when set, is told how many of the blocks to move have been
	// copied.
	Progress ShrinkProgress
}

// ShrinkPlan describes what Shrink would do. PlanShrink computes it without
// writing anything.
type ShrinkPlan struct {
	BlockSize            int64  // bytes per block
	OldBlocks, NewBlocks uint64 // filesystem size before and after, in blocks
	OldGroups, NewGroups uint64 // block groups before and after
	// MoveBlocks counts in-use blocks above the new end that are copied
	// below it (file data, extent, indirect and xattr blocks, relocated
	// group metadata).
	MoveBlocks uint64
	// MoveInodes counts used inodes of the groups that disappear, which get
	// new numbers in the groups that remain.
	MoveInodes uint64
	// MetadataBlocks counts group metadata blocks (bitmaps, inode tables)
	// of remaining groups that are relocated below the new end.
	MetadataBlocks uint64
}

// NewSize returns the filesystem size after the shrink in bytes.
func (p *ShrinkPlan) NewSize() int64 { return int64(p.NewBlocks) * p.BlockSize }

// errNoSpace marks refusals that a larger target size would avoid.
var errNoSpace = errors.New("not enough space")

func spacef(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrCannotShrink, errNoSpace, fmt.Sprintf(format, args...))
}

func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCannotShrink, fmt.Sprintf(format, args...))
}

// PlanShrink checks that the filesystem in the first size bytes of r can be
// shrunk to newBlocks blocks and returns what the shrink would move. It
// walks every inode and simulates every allocation, so a plan it returns
// is one Shrink can carry out. It refuses (an error wrapping
// ErrCannotShrink or ErrNeedsRecovery) with the reason.
func PlanShrink(r io.ReaderAt, size int64, newBlocks uint64) (*ShrinkPlan, error) {
	s, err := newShrinker(r, size)
	if err != nil {
		return nil, err
	}
	if err := s.run(nil, newBlocks); err != nil {
		return nil, err
	}
	p := s.plan
	return &p, nil
}

// Shrink shrinks the filesystem in the first size bytes of rw to newBlocks
// blocks in place, as resize2fs does: blocks in use above the new end are
// copied to blocks that were free before the shrink, inodes of the groups
// that disappear are renumbered and every directory entry naming them is
// rewritten, and the group descriptors, bitmaps, superblocks (with their
// backups), the resize inode and every checksum are rewritten for the
// smaller size. The bytes past the new end are left as they are; the
// caller truncates the partition.
//
// Shrink first simulates the whole operation (as PlanShrink) and writes
// nothing when the simulation fails. New copies go only to blocks free in
// the old filesystem, so an undo log of the blocks it overwrites restores
// the filesystem after a crash.
func Shrink(rw ReadWriterAt, size int64, newBlocks uint64, opt ShrinkOptions) error {
	s, err := newShrinker(rw, size)
	if err != nil {
		return err
	}
	if err := s.run(nil, newBlocks); err != nil {
		return err
	}
	if s.plan.NewBlocks == s.plan.OldBlocks {
		return nil
	}
	total := s.plan.MoveBlocks
	s2, err := newShrinker(rw, size)
	if err != nil {
		return err
	}
	s2.progress = opt.Progress
	s2.progressTotal = int64(total)
	return s2.run(rw, newBlocks)
}
