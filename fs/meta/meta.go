// Package meta holds the types that every filesystem reader of imgtool
// shares: the metadata behind FileInfo.Sys(), and the small optional
// interfaces (usage, allocation map) that commands check with type
// assertions.
//
// It imports nothing of imgtool, so that fs (which probes) and each reader
// (fs/fat, fs/ext4, …) can both depend on it.
package meta

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"sync"
	"time"
)

// Stat is the full metadata of a file, returned by FileInfo.Sys() of every
// imgtool filesystem as a *Stat.
type Stat struct {
	Ino    uint64        // inode number (FAT: a stable synthetic number)
	Mode   iofs.FileMode // Go mode, with ModeSetuid/ModeSetgid/ModeSticky and type bits
	Unix   uint32        // the raw st_mode: S_IFMT type bits and permission bits as on disk
	Nlink  uint32
	Uid    uint32
	Gid    uint32
	Size   int64
	Blocks int64 // allocated 512-byte units, as st_blocks
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
	Crtime time.Time         // zero when the filesystem does not record it
	Rdev   Dev               // device numbers for char and block devices
	Flags  uint32            // filesystem-specific flags (ext4 i_flags, FAT attribute byte)
	Xattrs map[string][]byte // full names ("user.foo", "security.capability"); nil when none
	Link   string            // symlink target
}

// Dev is a device number split into major and minor.
type Dev struct {
	Major uint32
	Minor uint32
}

// Usage is a filesystem's size accounting in bytes.
type Usage struct {
	Total int64 // bytes the filesystem spans
	Used  int64 // bytes in use (metadata included)
	Free  int64 // bytes free for data
}

// Range is a byte range relative to the start of the filesystem.
type Range struct {
	Off int64
	Len int64
}

// UsageFS is implemented by filesystems that can compute their exact usage
// from their own allocation structures (not only header counters).
type UsageFS interface {
	Usage() (Usage, error)
}

// AllocationFS is implemented by filesystems that can say which byte ranges
// are in use. Ranges are sorted, non-overlapping and merged; everything not
// listed is free and may be skipped, zeroed or discarded.
type AllocationFS interface {
	Allocated() ([]Range, error)
}

// Labeled is implemented by filesystems that have a label and a UUID or
// volume ID to show.
type Labeled interface {
	Label() string
	UUID() string
}

// ErrWrongType is wrapped by a reader's Identify or New when the bytes are
// not its filesystem, so that probing can try the next one.
var ErrWrongType = errors.New("fs: not this filesystem")

// Info is what a cheap look at a filesystem's header (superblock, boot
// sector) tells, without walking the filesystem. Sizes are in bytes and come
// from the header's own counters.
type Info struct {
	Type          string // "vfat" (FAT12/16/32), "ext2", "ext3", "ext4", "swap"
	Variant       string // "FAT12", "FAT16", "FAT32"; empty otherwise
	Label         string
	UUID          string   // ext: RFC 4122 form; FAT: the volume ID as "A1B2-C3D4"
	BlockSize     int64    // ext block size or FAT cluster size
	Blocks        int64    // total blocks or clusters
	FreeBlocks    int64    // free blocks or clusters, from the header (FAT32 FSInfo; -1 when unknown)
	Size          int64    // bytes the filesystem spans
	Used          int64    // Size - Free, from the counters (-1 when unknown)
	Free          int64    // -1 when unknown
	Features      []string // ext feature names as e2fsprogs spells them
	NeedsRecovery bool     // ext3/4 journal needs replay
}

// HiddenFS is implemented by readers that hide directory entries whose
// names cannot be an io/fs path element ("", ".", "..", names holding '/'
// or NUL) — names a damaged or hostile image may hold. Hidden describes each
// such entry once, so that tools can warn about what they did not show.
type HiddenFS interface {
	Hidden() []string
}

// maxHidden bounds what a HiddenLog keeps.
const maxHidden = 1000

// HiddenLog records hidden entries for a reader's Hidden method. The zero
// value is ready; it is safe for concurrent use and keeps at most 1000
// distinct descriptions.
type HiddenLog struct {
	mu    sync.Mutex
	seen  map[string]bool
	order []string
	extra int
}

// Add records one hidden entry described by desc.
func (h *HiddenLog) Add(desc string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[desc] {
		return
	}
	if len(h.order) >= maxHidden {
		h.extra++
		return
	}
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	h.seen[desc] = true
	h.order = append(h.order, desc)
}

// Hidden returns the descriptions in the order they were found, with a last
// line counting those beyond the bound.
func (h *HiddenLog) Hidden() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]string(nil), h.order...)
	if h.extra > 0 {
		out = append(out, fmt.Sprintf("… and %d further reports not kept", h.extra))
	}
	return out
}

// PlacedFile is implemented by open files whose content can be located in
// the reader their filesystem was opened on, so that a caller holding the
// underlying file can copy it without passing the bytes through memory
// (sendfile, copy_file_range).
type PlacedFile interface {
	// Device returns the reader the offsets of Place refer to.
	Device() (r any, size int64)
	// Place calls fn for each run of content in [off, off+n), in order and
	// covering the range exactly: dev is the run's byte offset in Device,
	// or -1 for a run that reads as zeros (a hole). n is clipped to the
	// file's size. It fails with ErrNotPlaced when the content is not
	// stored in runs (inline data).
	Place(off, n int64, fn func(dev, length int64) error) error
}

// ErrNotPlaced is returned by PlacedFile.Place for content that has no
// place of its own in the device.
var ErrNotPlaced = errors.New("fs: file content is not stored in blocks of its own")
