package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"imgtool/fs/meta"
)

// geometry is what the superblock says about the layout, checked for sanity.
type geometry struct {
	blockSize    int64
	logBlock     uint32
	blocks       uint64 // blocks_count
	freeBlocks   uint64
	firstData    uint64
	bpg          uint64 // blocks per group
	cpg          uint64 // clusters per group
	clusterRatio uint64 // blocks per cluster (1 without bigalloc)
	ipg          uint32
	inodes       uint32
	inodeSize    int64
	descSize     int64
	groups       uint64
	firstIno     uint32
}

// readSuperblock reads and decodes the primary superblock. It fails with
// an error wrapping meta.ErrWrongType when there is no ext magic.
func readSuperblock(r io.ReaderAt, size int64) (*Superblock, []byte, error) {
	if size < SuperblockOffset+SuperblockSize {
		return nil, nil, fmt.Errorf("ext4: %d bytes is too small for a superblock: %w", size, meta.ErrWrongType)
	}
	raw := make([]byte, SuperblockSize)
	if _, err := r.ReadAt(raw, SuperblockOffset); err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("ext4: reading superblock: %w", err)
	}
	if binary.LittleEndian.Uint16(raw[0x38:]) != SuperMagic {
		return nil, nil, fmt.Errorf("ext4: no superblock magic at offset 1080: %w", meta.ErrWrongType)
	}
	sb := new(Superblock)
	if _, err := binary.Decode(raw, binary.LittleEndian, sb); err != nil {
		return nil, nil, fmt.Errorf("ext4: decoding superblock: %w", err)
	}
	return sb, raw, nil
}

func sbError(msg string, args ...any) error {
	return &FormatError{Block: -1, Off: SuperblockOffset, What: "superblock", Msg: fmt.Sprintf(msg, args...), Err: ErrCorrupt}
}

// geometry validates the superblock's layout fields.
func (sb *Superblock) geometry() (*geometry, error) {
	g := &geometry{}
	if sb.LogBlockSize > 6 {
		return nil, sbError("block size 2^(10+%d) is not 1 to 64 KiB", sb.LogBlockSize)
	}
	g.logBlock = 10 + sb.LogBlockSize
	g.blockSize = 1 << g.logBlock
	g.blocks = uint64(sb.BlocksCountLo)
	g.freeBlocks = uint64(sb.FreeBlocksCountLo)
	if sb.FeatureIncompat&Incompat64bit != 0 {
		g.blocks |= uint64(sb.BlocksCountHi) << 32
		g.freeBlocks |= uint64(sb.FreeBlocksCountHi) << 32
	}
	if g.blocks == 0 || g.blocks > 1<<48 {
		return nil, sbError("blocks count %d out of range", g.blocks)
	}
	g.firstData = uint64(sb.FirstDataBlock)
	if g.firstData >= g.blocks || g.firstData > 1 {
		return nil, sbError("first data block %d out of range", g.firstData)
	}
	g.bpg = uint64(sb.BlocksPerGroup)
	g.cpg = g.bpg
	g.clusterRatio = 1
	if sb.FeatureROCompat&ROCompatBigalloc != 0 {
		if sb.LogClusterSize < sb.LogBlockSize || sb.LogClusterSize-sb.LogBlockSize > 16 {
			return nil, sbError("cluster size 2^(10+%d) out of range", sb.LogClusterSize)
		}
		g.clusterRatio = 1 << (sb.LogClusterSize - sb.LogBlockSize)
		g.cpg = uint64(sb.ClustersPerGroup)
		if g.cpg == 0 || g.cpg > uint64(8*g.blockSize) || g.cpg*g.clusterRatio != g.bpg {
			return nil, sbError("clusters per group %d inconsistent with blocks per group %d", g.cpg, g.bpg)
		}
	} else if g.bpg == 0 || g.bpg > uint64(8*g.blockSize) {
		return nil, sbError("blocks per group %d out of range", g.bpg)
	}
	g.groups = (g.blocks - g.firstData + g.bpg - 1) / g.bpg
	g.ipg = sb.InodesPerGroup
	if g.ipg == 0 || int64(g.ipg) > 8*g.blockSize {
		return nil, sbError("inodes per group %d out of range", g.ipg)
	}
	g.inodes = sb.InodesCount
	if g.inodes == 0 || uint64(g.inodes) > g.groups*uint64(g.ipg) {
		return nil, sbError("inodes count %d exceeds %d groups of %d", g.inodes, g.groups, g.ipg)
	}
	g.inodeSize = GoodOldInodeSize
	g.firstIno = GoodOldFirstIno
	if sb.RevLevel >= 1 {
		g.inodeSize = int64(sb.InodeSize)
		g.firstIno = sb.FirstIno
		if g.inodeSize < GoodOldInodeSize || g.inodeSize > g.blockSize || g.inodeSize&(g.inodeSize-1) != 0 {
			return nil, sbError("inode size %d out of range", g.inodeSize)
		}
	}
	g.descSize = 32
	if sb.FeatureIncompat&Incompat64bit != 0 {
		g.descSize = int64(sb.DescSize)
		if g.descSize < 64 || g.descSize > 1024 || g.descSize&(g.descSize-1) != 0 {
			return nil, sbError("group descriptor size %d out of range", g.descSize)
		}
	}
	return g, nil
}

// csumSeed returns the metadata_csum seed.
func (sb *Superblock) csumSeed() uint32 {
	if sb.FeatureIncompat&IncompatCsumSeed != 0 {
		return sb.ChecksumSeed
	}
	return crc32c(^uint32(0), sb.UUID[:])
}

// verifyChecksum checks s_checksum on metadata_csum filesystems.
func verifySuperblockChecksum(sb *Superblock, raw []byte) error {
	if sb.FeatureROCompat&ROCompatMetadataCsum == 0 {
		return nil
	}
	if sb.ChecksumType != 1 {
		return sbError("unknown checksum type %d", sb.ChecksumType)
	}
	if crc32c(^uint32(0), raw[:0x3FC]) != sb.Checksum {
		return &FormatError{Block: -1, Off: SuperblockOffset, What: "superblock", Msg: "checksum mismatch (use WithoutVerify to read anyway)", Err: ErrChecksum}
	}
	return nil
}

// fsType decides between ext2, ext3 and ext4 the way blkid does: features
// beyond those ext3 knows make ext4; otherwise a journal makes ext3.
func (sb *Superblock) fsType() string {
	const ext3Incompat = IncompatFiletype | IncompatRecover | IncompatMetaBG
	const ext3RO = ROCompatSparseSuper | ROCompatLargeFile | ROCompatBtreeDir
	switch {
	case sb.FeatureIncompat&^ext3Incompat != 0 || sb.FeatureROCompat&^ext3RO != 0:
		return "ext4"
	case sb.FeatureCompat&CompatHasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// Label returns the volume label.
func (sb *Superblock) Label() string {
	n := bytes.IndexByte(sb.VolumeName[:], 0)
	if n < 0 {
		n = len(sb.VolumeName)
	}
	return string(sb.VolumeName[:n])
}

// UUIDString returns the filesystem UUID in lowercase RFC 4122 form.
func (sb *Superblock) UUIDString() string {
	return formatUUID(sb.UUID)
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Identify reads only the superblock and describes the filesystem. The type
// is "ext2", "ext3" or "ext4" as blkid would say; sizes come from the
// superblock counters. It does not verify checksums (New does). It returns
// an error wrapping meta.ErrWrongType when there is no ext magic.
func Identify(r io.ReaderAt, size int64) (*meta.Info, error) {
	sb, _, err := readSuperblock(r, size)
	if err != nil {
		return nil, err
	}
	if sb.FeatureIncompat&IncompatJournalDev != 0 {
		return nil, fmt.Errorf("ext4: external journal device, not a filesystem: %w", meta.ErrWrongType)
	}
	g, err := sb.geometry()
	if err != nil {
		return nil, err
	}
	info := &meta.Info{
		Type:          sb.fsType(),
		Label:         sb.Label(),
		UUID:          sb.UUIDString(),
		BlockSize:     g.blockSize,
		Blocks:        int64(g.blocks),
		FreeBlocks:    int64(g.freeBlocks),
		Size:          int64(g.blocks) * g.blockSize,
		Features:      sb.Features(),
		NeedsRecovery: sb.FeatureIncompat&IncompatRecover != 0,
	}
	if g.freeBlocks > g.blocks {
		info.FreeBlocks = -1
		info.Free, info.Used = -1, -1
	} else {
		info.Free = int64(g.freeBlocks) * g.blockSize
		info.Used = info.Size - info.Free
	}
	return info, nil
}
