package shrink

import (
	"errors"
	"io"
	iofs "io/fs"
)

// ReadWriterAt is an image or partition that can be read and written in
// place.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// ErrNoEngine is returned when this build has no ext2/3/4 write support.
var ErrNoEngine = errors.New("shrink: this build of imgtool cannot write ext2/3/4 filesystems yet")

// Engine is what shrink needs of an ext2/3/4 implementation. The one that
// is used (package fs/ext4) lives in ext4engine.go; tests may swap it.
type Engine interface {
	// MinSize returns the fewest blocks the filesystem can be shrunk to.
	MinSize(r io.ReaderAt, size int64) (uint64, error)
	// PlanShrink says what shrinking to newBlocks blocks would move.
	PlanShrink(r io.ReaderAt, size int64, newBlocks uint64) (EnginePlan, error)
	// Shrink shrinks the filesystem to newBlocks blocks in place.
	Shrink(rw ReadWriterAt, size int64, newBlocks uint64, p Progress) error
	// NeedsRecovery reports whether the journal needs replaying.
	NeedsRecovery(r io.ReaderAt, size int64) (bool, error)
	// Replay replays the journal.
	Replay(rw ReadWriterAt, size int64) error
	// ReleaseOrphans frees the inodes of the orphan list.
	ReleaseOrphans(rw ReadWriterAt, size int64) (int, error)
	// Check checks the filesystem's consistency; a non-nil error says
	// what is wrong.
	Check(r io.ReaderAt, size int64) error
	// MarkClean records a clean Check in the filesystem (as e2fsck does),
	// so that a backup copied while mounted can be shrunk.
	MarkClean(rw ReadWriterAt, size int64) error
	// OpenWriter opens the filesystem for writing small files.
	OpenWriter(rw ReadWriterAt, size int64) (FileWriter, error)
}

// EnginePlan is what a filesystem shrink will do.
type EnginePlan struct {
	BlocksToMove int64 // data blocks that lie beyond the new end
	InodesToMove int64 // inodes in block groups that go away
}

// FileWriter writes small files into a filesystem.
type FileWriter interface {
	WriteFile(path string, data []byte, mode iofs.FileMode, uid, gid uint32) error
	Mkdir(path string, mode iofs.FileMode) error
	Symlink(target, path string) error
	Remove(path string) error
	Close() error
}

// engine is the Engine in use.
var engine Engine = ext4Engine{}
