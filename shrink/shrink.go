// Package shrink makes a raw disk image as small as its data: it shrinks the
// ext2/3/4 filesystem of the last partition to its minimum plus some slack,
// rewrites that partition's entry (MBR, logical partitions included, or
// GPT, whose backup header and array move to the new end), truncates the
// file after the last partition, and arms a first-boot expansion so that
// the image grows back to fill the card it is written to.
//
// Plan says what would happen without writing. Apply does it, in place or
// on a copy (Options.Output), through an undo log (package shrink/undo):
// a run killed at any point leaves an image that the next imgtool command
// (or Undo) restores to its original bytes, and a run whose result fails
// the filesystem check is rolled back before Apply returns.
//
// Sizes: the filesystem keeps Options.Slack bytes free beyond its minimum
// (default: 5 % of the minimum, at least 64 MiB), and the last partition
// ends on a 1 MiB boundary. The filesystem is shrunk only when that saves
// at least half the slack (at least 1 MiB), so that a second shrink with the
// same options changes nothing; a smaller --slack shaves more. The image never
// grows. When the last partition does not hold ext2/3/4 (FAT, swap, no
// filesystem), only the bytes after it are cut.
//
// Limits: only the last partition (by start) is shrunk; bytes after it
// that no partition holds are dropped; free-space bytes beyond the new end
// are not kept by the undo log (they read as zeros after a rollback).
package shrink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"imgtool/expand"
	"imgtool/fs"
	"imgtool/fs/meta"
	"imgtool/internal/cow"
	"imgtool/part"
	"imgtool/shrink/undo"
)

// MiB is the alignment of the new end of the last partition.
const MiB = 1 << 20

// DefaultMinSlack is the least free space the shrunk filesystem keeps
// when Options.Slack is negative (the default).
const DefaultMinSlack = 64 * MiB

// Progress receives progress reports: a phase with its total in bytes,
// then the bytes done. It is the shape of flash.Progress.
type Progress interface {
	Phase(name string, total int64)
	Update(n int64)
}

type noProgress struct{}

func (noProgress) Phase(string, int64) {}
func (noProgress) Update(int64)        {}

// Options tunes Plan and Apply.
type Options struct {
	// Slack is the free space in bytes to leave in the filesystem beyond
	// its minimum; negative means the default (5 % of the minimum, at
	// least DefaultMinSlack).
	Slack int64
	// NoExpand leaves first-boot expansion alone.
	NoExpand bool
	// KeepFreeData leaves free blocks as they are; by default they are
	// made to read as zeros (holes where the system can punch them).
	KeepFreeData bool
	// Output, when set, is a new file that receives the result; the input
	// is not modified.
	Output string
	// Progress, when set, receives progress reports.
	Progress Progress
}

// PlanReport says what a shrink does. Sizes and offsets are bytes.
type PlanReport struct {
	Path          string `json:"path"`
	Size          int64  `json:"size"`     // image size now
	NewSize       int64  `json:"new_size"` // image size after
	Table         string `json:"table"`
	Partition     int    `json:"partition"` // number of the last partition; 0 when none
	PartStart     int64  `json:"partition_start"`
	PartSize      int64  `json:"partition_size"`
	NewPartSize   int64  `json:"new_partition_size"`
	Filesystem    string `json:"filesystem"` // "ext4", "vfat", "" when unknown
	ShrinkFS      bool   `json:"shrink_filesystem"`
	BlockSize     int64  `json:"block_size,omitempty"`
	Blocks        uint64 `json:"blocks,omitempty"`     // filesystem blocks now
	MinBlocks     uint64 `json:"min_blocks,omitempty"` // the fewest it can hold its data in
	NewBlocks     uint64 `json:"new_blocks,omitempty"`
	Slack         int64  `json:"slack,omitempty"`
	BlocksToMove  int64  `json:"blocks_to_move"`
	InodesToMove  int64  `json:"inodes_to_move"`
	NeedsRecovery bool   `json:"needs_recovery,omitempty"`
	NoChange      bool   `json:"no_change"`
	Note          string `json:"note,omitempty"`
}

// Plan reads the image at path (after restoring it from an interrupted
// run, if needed) and says what Apply would do. It writes nothing else.
func Plan(path string, opts Options) (*PlanReport, error) {
	if _, err := RecoverIfNeeded(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	p, err := PlanImage(f, fi.Size(), opts)
	if p != nil {
		p.Path = path
	}
	return p, err
}

// layout is a plan with what Apply needs to carry it out.
type layout struct {
	PlanReport
	tbl  *part.Table
	last *part.Partition
}

// PlanImage is Plan for an image held in r.
func PlanImage(r io.ReaderAt, size int64, opts Options) (*PlanReport, error) {
	l, err := plan(r, size, opts)
	if err != nil {
		return nil, err
	}
	return &l.PlanReport, nil
}

func plan(r io.ReaderAt, size int64, opts Options) (*layout, error) {
	tbl, err := part.Read(r, size)
	if err != nil {
		return nil, err
	}
	l := &layout{tbl: tbl}
	l.Size, l.Table = size, tbl.Kind.String()
	var end int64 // end of the partitions other than the last
	for i := range tbl.Partitions {
		p := &tbl.Partitions[i]
		if p.Extended {
			continue
		}
		if l.last == nil || p.Start > l.last.Start {
			l.last = p
		}
	}
	if l.last == nil {
		l.NewSize, l.NoChange, l.Note = size, true, "no partitions"
		return l, nil
	}
	for i := range tbl.Partitions {
		p := &tbl.Partitions[i]
		if !p.Extended && p != l.last {
			end = max(end, p.End())
		}
	}
	last := l.last
	if last.Truncated {
		return nil, fmt.Errorf("shrink: partition %d runs past the end of the image (%d bytes); the image is incomplete, copy it again", last.Number, size)
	}
	l.Partition, l.PartStart, l.PartSize, l.NewPartSize = last.Number, last.Start, last.Size, last.Size
	sec := last.Section()
	if info, err := fs.Identify(sec, last.Size); err == nil {
		l.Filesystem = info.Type
		l.BlockSize = info.BlockSize
		l.Blocks = uint64(info.Blocks)
		l.NeedsRecovery = info.NeedsRecovery
	}
	switch l.Filesystem {
	case "ext2", "ext3", "ext4":
		if err := planExt(l, sec, opts); err != nil {
			return nil, err
		}
	case "":
		l.Note = "the last partition holds no filesystem imgtool knows; only the bytes after it are cut"
	default:
		l.Note = fmt.Sprintf("the last partition holds %s, which imgtool does not shrink; only the bytes after it are cut", l.Filesystem)
	}
	newEnd := max(end, alignUp(l.PartStart+l.NewPartSize, MiB))
	if l.NewPartSize == l.PartSize {
		newEnd = max(end, last.End())
	}
	l.NewSize = newEnd
	if tbl.Kind == part.GPT && tbl.GPT != nil {
		ss := int64(tbl.SectorSize)
		arr := alignUp(int64(tbl.GPT.NumEntries)*int64(tbl.GPT.EntrySize), ss)
		l.NewSize = alignUp(newEnd, MiB) + arr + ss
	} else {
		l.NewSize = alignUp(newEnd, MiB)
	}
	l.NewSize = min(l.NewSize, size)
	l.NoChange = l.NewSize == size && l.NewPartSize == l.PartSize
	return l, nil
}

// planExt sizes the shrunk ext2/3/4 filesystem of the last partition.
// maxPlanMemory caps the memory a journal replayed for planning may use.
const maxPlanMemory = 512 << 20

func planExt(l *layout, sec io.ReaderAt, opts Options) error {
	bs := l.BlockSize
	if bs <= 0 {
		return fmt.Errorf("shrink: partition %d: bad block size", l.Partition)
	}
	if l.NeedsRecovery {
		// Plan on what the filesystem will be once its journal is
		// replayed: replay it into memory, leaving the image as it is.
		ov := cow.New(sec, l.PartSize, maxPlanMemory)
		if err := engine.Replay(ov, l.PartSize); err != nil && !errors.Is(err, ErrNoEngine) {
			return fmt.Errorf("shrink: partition %d: replaying the journal: %w (run e2fsck on it first)", l.Partition, err)
		}
		if _, err := engine.ReleaseOrphans(ov, l.PartSize); err != nil && !errors.Is(err, ErrNoEngine) {
			return fmt.Errorf("shrink: partition %d: releasing orphan inodes: %w", l.Partition, err)
		}
		sec = ov
	}
	minBlocks, err := engine.MinSize(sec, l.PartSize)
	if err != nil {
		return fmt.Errorf("shrink: partition %d: %w", l.Partition, err)
	}
	l.MinBlocks = minBlocks
	minBytes := int64(minBlocks) * bs
	slack := opts.Slack
	if slack < 0 {
		slack = max(DefaultMinSlack, minBytes/20)
	}
	l.Slack = slack
	fsEnd := alignUp(l.PartStart+minBytes+slack, MiB)
	newBlocks := uint64((fsEnd - l.PartStart) / bs)
	// Shrinking for less than half the slack is not worth moving blocks:
	// this makes a second shrink with the same options a no-op although
	// the minimum estimate of a shrunk filesystem varies a little.
	worth := uint64(max(slack/2, MiB) / bs)
	if newBlocks+worth > l.Blocks {
		// Already as small as it gets: keep the filesystem, but let the
		// partition end where the filesystem (aligned) ends.
		l.NewBlocks = l.Blocks
		if pe := alignUp(l.PartStart+int64(l.Blocks)*bs, MiB) - l.PartStart; pe < l.PartSize {
			l.NewPartSize = pe
		}
		return nil
	}
	l.ShrinkFS, l.NewBlocks = true, newBlocks
	l.NewPartSize = fsEnd - l.PartStart
	if ep, err := engine.PlanShrink(sec, l.PartSize, newBlocks); err == nil {
		l.BlocksToMove, l.InodesToMove = ep.BlocksToMove, ep.InodesToMove
	}
	return nil
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// Result is what Apply did.
type Result struct {
	Plan            PlanReport     `json:"plan"`
	Output          string         `json:"output"` // the file that holds the result
	OldSize         int64          `json:"old_size"`
	NewSize         int64          `json:"new_size"`
	Replayed        bool           `json:"journal_replayed,omitempty"`
	OrphansReleased int            `json:"orphans_released,omitempty"`
	Expansion       *expand.Status `json:"expansion,omitempty"`
	ExpansionAction string         `json:"expansion_action,omitempty"`
	ZeroedBytes     int64          `json:"zeroed_bytes"`
	Changes         int            `json:"changes"` // writes, truncation and commit made through the undo log
}

// ErrCheck wraps a filesystem check failure; Apply refuses to shrink (or
// rolls back) when it occurs.
var ErrCheck = errors.New("shrink: filesystem check failed")

// Apply shrinks the image at path (or a copy of it at opts.Output).
func Apply(ctx context.Context, path string, opts Options) (*Result, error) {
	prog := opts.Progress
	if prog == nil {
		prog = noProgress{}
	}
	if _, err := RecoverIfNeeded(path); err != nil {
		return nil, err
	}
	target := path
	if opts.Output != "" {
		if err := copyImage(ctx, path, opts.Output, opts, prog); err != nil {
			return nil, err
		}
		target = opts.Output
	}
	lg, err := undo.Begin(target)
	if err != nil {
		return nil, err
	}
	res, err := apply(ctx, lg, opts, prog)
	if err != nil {
		if aerr := lg.Abort(); aerr != nil {
			return nil, fmt.Errorf("%w; restoring the image also failed: %v (run imgtool shrink --undo %s)", err, aerr, target)
		}
		return nil, err
	}
	res.Output = target
	if err := lg.Commit(); err != nil {
		return nil, err
	}
	res.Changes = lg.Changes()
	if !opts.KeepFreeData {
		n, err := zeroFree(ctx, target, prog)
		res.ZeroedBytes = n
		if err != nil {
			return res, fmt.Errorf("shrink: done, but making free space read as zeros failed: %w", err)
		}
	}
	return res, nil
}

func apply(ctx context.Context, lg *undo.Log, opts Options, prog Progress) (*Result, error) {
	size := lg.Size()
	res := &Result{OldSize: size}
	l, err := plan(lg, size, opts)
	if err != nil {
		return nil, err
	}
	last := l.last
	isExt := l.Filesystem == "ext2" || l.Filesystem == "ext3" || l.Filesystem == "ext4"
	if isExt {
		prw := partRW(lg, last)
		if rec, err := engine.NeedsRecovery(prw, last.Size); err != nil && !errors.Is(err, ErrNoEngine) {
			return nil, fmt.Errorf("shrink: partition %d: %w", last.Number, err)
		} else if rec {
			if err := engine.Replay(prw, last.Size); err != nil {
				return nil, fmt.Errorf("shrink: partition %d: replaying the journal: %w (run e2fsck on it first)", last.Number, err)
			}
			res.Replayed = true
		}
		n, err := engine.ReleaseOrphans(prw, last.Size)
		if err != nil && !errors.Is(err, ErrNoEngine) {
			return nil, fmt.Errorf("shrink: partition %d: releasing orphan inodes: %w", last.Number, err)
		}
		res.OrphansReleased = n
		if err := engine.Check(prw, last.Size); err != nil && !errors.Is(err, ErrNoEngine) {
			return nil, fmt.Errorf("%w: partition %d: %v (run e2fsck -f on it first)", ErrCheck, last.Number, err)
		}
		if err := engine.MarkClean(prw, last.Size); err != nil && !errors.Is(err, ErrNoEngine) {
			return nil, fmt.Errorf("shrink: partition %d: %w", last.Number, err)
		}
		if res.Replayed || n > 0 {
			if l, err = plan(lg, size, opts); err != nil {
				return nil, err
			}
			last = l.last
		}
	}
	res.Plan = l.PlanReport
	// What the truncation destroys that matters: what every filesystem
	// uses beyond the new end, and a GPT backup.
	keep := usedRanges(lg, l.tbl)
	if l.tbl.Kind == part.GPT {
		keep = append(keep, undo.Range{Off: max(0, size-MiB), Len: min(MiB, size)})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.ShrinkFS {
		if err := engine.Shrink(partRW(lg, last), last.Size, l.NewBlocks, prog); err != nil {
			return nil, fmt.Errorf("shrink: partition %d: %w", last.Number, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !l.NoChange {
		if err := writeTable(lg, l); err != nil {
			return nil, err
		}
	}
	if !opts.NoExpand && isExt {
		st, action, err := arm(lg, l.NewSize, l)
		if errors.Is(err, ErrNoEngine) {
			st.Armed, action, err = false, "not armed: this build cannot write files into ext4 yet", nil
		}
		if err != nil {
			return nil, fmt.Errorf("shrink: arming first-boot expansion: %w (use --no-expand to skip it)", err)
		}
		res.Expansion, res.ExpansionAction = &st, action
	}
	if l.NewSize != size {
		prog.Phase("save", 0)
		if err := lg.Truncate(l.NewSize, keep); err != nil {
			return nil, err
		}
	}
	res.NewSize = l.NewSize
	// Read the result back with our readers.
	if err := verify(lg, l.NewSize, l, isExt); err != nil {
		return nil, err
	}
	return res, nil
}

// verify re-reads the table and the last filesystem of the result.
func verify(r io.ReaderAt, size int64, l *layout, isExt bool) error {
	tbl, err := part.Read(r, size)
	if err != nil {
		return fmt.Errorf("%w: the new partition table does not read back: %v", ErrCheck, err)
	}
	if len(tbl.Warnings) > 0 {
		return fmt.Errorf("%w: the new partition table: %s", ErrCheck, tbl.Warnings[0])
	}
	var p *part.Partition
	for i := range tbl.Partitions {
		if tbl.Partitions[i].Number == l.Partition {
			p = &tbl.Partitions[i]
		}
	}
	if p == nil || p.Size != l.NewPartSize || p.Start != l.PartStart || p.End() > size {
		return fmt.Errorf("%w: partition %d does not read back as planned", ErrCheck, l.Partition)
	}
	if !isExt {
		return nil
	}
	if _, _, err := fs.Open(p.Section(), p.Size, fs.Options{}); err != nil {
		return fmt.Errorf("%w: partition %d: %v", ErrCheck, p.Number, err)
	}
	if err := engine.Check(p.Section(), p.Size); err != nil && !errors.Is(err, ErrNoEngine) {
		return fmt.Errorf("%w: partition %d after shrinking: %v", ErrCheck, p.Number, err)
	}
	return nil
}

// usedRanges lists, as image offsets, what each filesystem allocates and
// every byte outside the filesystems up to the end of the last partition
// (tables, EBRs, gaps).
func usedRanges(r io.ReaderAt, tbl *part.Table) []undo.Range {
	var out []undo.Range
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		f, _, err := fs.Open(p.Section(), p.Size, fs.Options{NoVerify: true})
		var rs []meta.Range
		if err == nil {
			rs, err = f.Allocated()
		}
		if err != nil {
			out = append(out, undo.Range{Off: p.Start, Len: p.Size})
			continue
		}
		for _, x := range rs {
			out = append(out, undo.Range{Off: p.Start + x.Off, Len: x.Len})
		}
	}
	return out
}

// partRW is a partition's bytes inside the image, readable and writable.
type partIO struct {
	io.ReaderAt
	io.WriterAt
}

func partRW(rw ReadWriterAt, p *part.Partition) ReadWriterAt {
	return partIO{io.NewSectionReader(rw, p.Start, p.Size), p.WriterAt(rw)}
}

// writeTable rewrites the last partition's entry.
func writeTable(w ReadWriterAt, l *layout) error {
	tbl := l.tbl
	switch tbl.Kind {
	case part.MBR:
		m := tbl.MBR
		ss := int64(m.SectorSize)
		newSectors := uint64(l.NewPartSize / ss)
		newEnd := uint64((l.PartStart + l.NewPartSize) / ss)
		for i := range m.Partitions {
			mp := &m.Partitions[i]
			if mp.Number == l.Partition {
				mp.Sectors = newSectors
			}
		}
		if l.last.Logical {
			if ext := m.Extended(); ext != nil {
				for i := range m.Partitions {
					if m.Partitions[i].Extended() && m.Partitions[i].Start == ext.Start && m.Partitions[i].End() > newEnd {
						m.Partitions[i].Sectors = newEnd - m.Partitions[i].Start
					}
				}
			}
		}
		if err := m.Write(w); err != nil {
			return fmt.Errorf("shrink: writing the MBR: %w", err)
		}
	case part.GPT:
		g := tbl.GPT
		ss := int64(g.SectorSize)
		for i := range g.Partitions {
			if g.Partitions[i].Number == l.Partition {
				g.Partitions[i].LastLBA = uint64((l.PartStart+l.NewPartSize)/ss) - 1
			}
		}
		if err := g.Write(w, l.NewSize); err != nil {
			return fmt.Errorf("shrink: writing the GPT: %w", err)
		}
	}
	return nil
}

// Undo restores an image from the undo log that an interrupted shrink
// left next to it. It returns an error wrapping os.ErrNotExist when there
// is none.
func Undo(path string) (undo.Stats, error) { return undo.Rollback(path) }

// RecoverIfNeeded restores the image at path when an interrupted run left
// an undo log next to it, and reports whether it did. Every command that
// opens an image calls it first.
func RecoverIfNeeded(path string) (bool, error) { return undo.RecoverIfNeeded(path) }
