package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ReadWriterAt is what the repair functions (Replay, ReleaseOrphans) need:
// random-access reads and writes of the filesystem's bytes.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// repairWriteAt writes p at byte offset off, failing on a short write with an
// error that names the block.
func repairWriteAt(w io.WriterAt, p []byte, off, blockSize int64, what string) error {
	n, err := w.WriteAt(p, off)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("ext4: writing %s at block %d: %w", what, off/blockSize, err)
	}
	return nil
}

// repairReadSuper reads the primary superblock's raw bytes and decodes
// them.
func repairReadSuper(r io.ReaderAt) (*Superblock, []byte, error) {
	raw := make([]byte, SuperblockSize)
	if n, err := r.ReadAt(raw, SuperblockOffset); n != len(raw) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, fmt.Errorf("ext4: reading superblock: %w", err)
	}
	sb := new(Superblock)
	if _, err := binary.Decode(raw, binary.LittleEndian, sb); err != nil {
		return nil, nil, fmt.Errorf("ext4: decoding superblock: %w", err)
	}
	if sb.Magic != SuperMagic {
		return nil, nil, sbError("no superblock magic")
	}
	return sb, raw, nil
}

// repairWriteSuper encodes sb, recomputes its metadata_csum checksum and
// writes it as the primary superblock. Backup superblocks are left alone,
// as e2fsck and the kernel do.
func repairWriteSuper(w io.WriterAt, sb *Superblock) error {
	raw := make([]byte, SuperblockSize)
	if _, err := binary.Encode(raw, binary.LittleEndian, sb); err != nil {
		return fmt.Errorf("ext4: encoding superblock: %w", err)
	}
	if sb.FeatureROCompat&ROCompatMetadataCsum != 0 {
		sb.Checksum = crc32c(^uint32(0), raw[:0x3FC])
		binary.LittleEndian.PutUint32(raw[0x3FC:], sb.Checksum)
	}
	return repairWriteAt(w, raw, SuperblockOffset, 1024, "superblock")
}

// repairSetFreeBlocks stores a free block count in the superblock's Lo/Hi pair.
func repairSetFreeBlocks(sb *Superblock, n uint64) {
	sb.FreeBlocksCountLo = uint32(n)
	if sb.FeatureIncompat&Incompat64bit != 0 {
		sb.FreeBlocksCountHi = uint32(n >> 32)
	}
}

func repairFreeBlocks(sb *Superblock) uint64 {
	n := uint64(sb.FreeBlocksCountLo)
	if sb.FeatureIncompat&Incompat64bit != 0 {
		n |= uint64(sb.FreeBlocksCountHi) << 32
	}
	return n
}
