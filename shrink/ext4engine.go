package shrink

import (
	"io"
	iofs "io/fs"

	"imgtool/fs/ext4"
)

// ext4Engine is the Engine backed by package fs/ext4. OpenWriter reports
// ErrNoEngine until fs/ext4 has its small-file writer.
type ext4Engine struct{}

func (ext4Engine) MinSize(r io.ReaderAt, size int64) (uint64, error) { return ext4.MinSize(r, size) }

func (ext4Engine) PlanShrink(r io.ReaderAt, size int64, newBlocks uint64) (EnginePlan, error) {
	p, err := ext4.PlanShrink(r, size, newBlocks)
	if err != nil {
		return EnginePlan{}, err
	}
	return EnginePlan{BlocksToMove: int64(p.MoveBlocks + p.MetadataBlocks), InodesToMove: int64(p.MoveInodes)}, nil
}

func (ext4Engine) Shrink(rw ReadWriterAt, size int64, newBlocks uint64, p Progress) error {
	return ext4.Shrink(rw, size, newBlocks, ext4.ShrinkOptions{Progress: shrinkProgress{p, new(int64(-1))}})
}

func (ext4Engine) NeedsRecovery(r io.ReaderAt, size int64) (bool, error) {
	return ext4.NeedsRecovery(r, size)
}

func (ext4Engine) Replay(rw ReadWriterAt, size int64) error {
	_, err := ext4.Replay(rw, size)
	return err
}

func (ext4Engine) ReleaseOrphans(rw ReadWriterAt, size int64) (int, error) {
	return ext4.ReleaseOrphans(rw, size)
}

func (ext4Engine) Check(r io.ReaderAt, size int64) error {
	rep, err := ext4.Check(r, size)
	if err != nil {
		return err
	}
	return rep.Err()
}

func (ext4Engine) MarkClean(rw ReadWriterAt, size int64) error { return ext4.MarkClean(rw, size) }

func (ext4Engine) OpenWriter(rw ReadWriterAt, size int64) (FileWriter, error) {
	w, err := ext4.OpenWriter(rw, size)
	if err != nil {
		return nil, err
	}
	return ext4FileWriter{w}, nil
}

// ext4FileWriter adapts ext4.Writer to FileWriter: directories are made
// owned by root.
type ext4FileWriter struct{ *ext4.Writer }

func (w ext4FileWriter) Mkdir(path string, mode iofs.FileMode) error {
	return w.Writer.Mkdir(path, mode, 0, 0)
}

// shrinkProgress reports fs/ext4's block counts as a "move" phase.
type shrinkProgress struct {
	p    Progress
	last *int64
}

func (s shrinkProgress) Update(done, total int64) {
	if *s.last < 0 {
		s.p.Phase("move", total)
		*s.last = 0
	}
	if done > *s.last {
		s.p.Update(done - *s.last)
		*s.last = done
	}
}
