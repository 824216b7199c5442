// Package fs identifies and opens the filesystems found in partitions.
//
// Identify looks only at headers (superblock, boot sector, swap signature)
// and is cheap and forgiving: inspect uses it to describe every partition.
// Open returns a full reader as an io/fs.FS (fs/fat, fs/ext4), with the
// optional capabilities of fs/meta (usage, allocation map, label).
//
// Supported: FAT12/16/32 (package fs/fat), ext2/3/4 (package fs/ext4), and
// Linux swap (identified only; it holds no files).
//
// # Security
//
// Partitions come from untrusted images. Every reader bounds its
// allocations and loops by sizes it has verified; probing errors are kept
// (errors.Join) rather than swallowed so that the final message says why
// each filesystem was rejected.
package fs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"

	"imgtool/fs/ext4"
	"imgtool/fs/fat"
	"imgtool/fs/meta"
	"imgtool/internal/cow"
)

// ErrUnknown is returned when no supported filesystem is recognised.
var ErrUnknown = errors.New("fs: no supported filesystem found")

// ErrNoFiles is returned by Open for a recognised filesystem that holds no
// files (swap).
var ErrNoFiles = errors.New("fs: filesystem holds no files")

// FS is an opened filesystem: an io/fs.FS plus what Identify said of it.
// The value behind FS also implements fs.ReadDirFS, fs.StatFS,
// fs.ReadFileFS, fs.ReadLinkFS and the fs/meta interfaces.
type FS interface {
	iofs.ReadDirFS
	iofs.StatFS
	iofs.ReadFileFS
	iofs.ReadLinkFS
	meta.UsageFS
	meta.AllocationFS
	meta.Labeled
}

// Options tunes Open.
type Options struct {
	// NoVerify reads ext4 metadata even when its checksums do not match.
	NoVerify bool
	// NoReplay reads an ext3/4 filesystem whose journal needs recovery as
	// it is on disk. By default the journal is replayed into memory first
	// (the image is not changed), so that reads see the latest committed
	// state, as the kernel would after mounting.
	NoReplay bool
}

// maxReplayMemory caps the memory a journal replay for reading may use.
const maxReplayMemory = 512 << 20

// Identify reports what filesystem the bytes hold, from its header alone.
// It returns an error wrapping ErrUnknown (joined with each prober's reason)
// when none is recognised.
func Identify(r io.ReaderAt, size int64) (*meta.Info, error) {
	var errs []error
	for _, probe := range []func(io.ReaderAt, int64) (*meta.Info, error){ext4.Identify, fat.Identify, identifySwap} {
		info, err := probe(r, size)
		if err == nil {
			return info, nil
		}
		if !errors.Is(err, meta.ErrWrongType) {
			// A recognised but damaged header is still worth reporting.
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrUnknown, errors.Join(errs...))
	}
	return nil, ErrUnknown
}

// Open identifies the filesystem and opens it for reading. info is what
// Identify returned for it.
func Open(r io.ReaderAt, size int64, opt Options) (FS, *meta.Info, error) {
	info, err := Identify(r, size)
	if err != nil {
		return nil, nil, err
	}
	switch info.Type {
	case "ext2", "ext3", "ext4":
		var opts []ext4.Option
		if opt.NoVerify {
			opts = append(opts, ext4.WithoutVerify())
		}
		if info.NeedsRecovery && !opt.NoReplay {
			f, note := openReplayed(r, size, opts)
			if f != nil {
				return f, info, nil
			}
			plain, err := ext4.New(r, size, opts...)
			if err != nil {
				return nil, info, err
			}
			return notedFS{FS: plain, note: note}, info, nil
		}
		f, err := ext4.New(r, size, opts...)
		if err != nil {
			return nil, info, err
		}
		return f, info, nil
	case "vfat":
		f, err := fat.New(r, size)
		if err != nil {
			return nil, info, err
		}
		return f, info, nil
	}
	return nil, info, fmt.Errorf("%w: %s", ErrNoFiles, info.Type)
}

// swap header (version 1), after 1024 bytes of boot space:
// version u32, last_page u32, nr_badpages u32, uuid [16]byte, label [16]byte.
// The signature sits in the last 10 bytes of the first page.
func identifySwap(r io.ReaderAt, size int64) (*meta.Info, error) {
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		if size < page {
			break
		}
		var sig [10]byte
		if _, err := r.ReadAt(sig[:], page-10); err != nil {
			continue
		}
		if !bytes.Equal(sig[:], []byte("SWAPSPACE2")) && !bytes.Equal(sig[:], []byte("SWAP-SPACE")) {
			continue
		}
		var hdr [52]byte
		if _, err := r.ReadAt(hdr[:], 1024); err != nil {
			return nil, fmt.Errorf("fs: swap header at offset 1024: %w", err)
		}
		info := &meta.Info{Type: "swap", BlockSize: page, Size: size, Used: -1, Free: -1, FreeBlocks: -1}
		lastPage := int64(binary.LittleEndian.Uint32(hdr[4:8]))
		if lastPage > 0 && (lastPage+1)*page <= size {
			info.Size = (lastPage + 1) * page
		}
		info.Blocks = info.Size / page
		if u := hdr[12:28]; !bytes.Equal(u, make([]byte, 16)) {
			info.UUID = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		}
		info.Label = string(bytes.TrimRight(hdr[28:44], "\x00 "))
		return info, nil
	}
	return nil, fmt.Errorf("fs: no swap signature: %w", meta.ErrWrongType)
}

// notedFS is an ext4 filesystem whose journal needed recovery, with a note
// on what was done about it (replayed in memory, or why not).
type notedFS struct {
	*ext4.FS
	note string
}

// Warnings returns the reader's warnings and the note.
func (f notedFS) Warnings() []string { return append(f.FS.Warnings(), f.note) }

// openReplayed replays the journal of an ext3/4 filesystem into a
// copy-on-write overlay in memory and opens the result. On failure it
// returns a nil FS and a note saying why the journal was not replayed.
func openReplayed(r io.ReaderAt, size int64, opts []ext4.Option) (FS, string) {
	ov := cow.New(r, size, maxReplayMemory)
	stats, err := ext4.Replay(ov, size)
	if err != nil {
		return nil, fmt.Sprintf("the journal needs recovery but could not be replayed in memory (%v): recent changes may be missing", err)
	}
	f, err := ext4.New(ov, size, opts...)
	if err != nil {
		return nil, fmt.Sprintf("the journal was replayed in memory but the result does not open (%v); reading the filesystem as it is on disk", err)
	}
	return notedFS{FS: f, note: fmt.Sprintf("the journal needed recovery: %d transactions (%d blocks) replayed in memory; the image itself is unchanged", stats.Transactions, stats.Replayed)}, ""
}
