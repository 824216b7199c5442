package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Write writes m as a block map file of format version 2.0, the layout
// bmaptool create writes: the sizes, MappedBlocksCount, ChecksumType sha256,
// BmapFileChecksum (the SHA-256 of the file with that value replaced by 64
// ASCII zeros) and one Range per entry of m.Ranges, each with its SHA-256.
// m.Version is ignored; every range must have a SHA-256 checksum, and the
// ranges must be in order, not overlap and lie inside the image.
func Write(w io.Writer, m *Map) error {
	if m.BlockSize <= 0 || m.ImageSize < 0 {
		return fmt.Errorf("bmap: block size %d and image size %d cannot be written", m.BlockSize, m.ImageSize)
	}
	blocks := (m.ImageSize + m.BlockSize - 1) / m.BlockSize
	var mapped int64
	prev := int64(-1)
	for _, r := range m.Ranges {
		if r.First <= prev || r.Last < r.First || r.Last >= blocks {
			return fmt.Errorf("bmap: range %d-%d is out of order or outside the image's %d blocks", r.First, r.Last, blocks)
		}
		if len(r.Checksum) != 2*sha256.Size {
			return fmt.Errorf("bmap: range %d-%d has no SHA-256 checksum", r.First, r.Last)
		}
		mapped += r.Last - r.First + 1
		prev = r.Last
	}
	zeros := strings.Repeat("0", 2*sha256.Size)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" ?>
<!-- This file contains the block map for an image file, which is basically
     a list of useful (mapped) block numbers in the image file. In other
     words, it lists only those blocks which contain data (boot sector,
     partition table, file-system metadata, files, directories, extents,
     etc). These blocks have to be copied to the target device. The other
     blocks do not contain any useful data and do not have to be copied to
     the target device.

     The block map is an optimization which allows to copy or flash the
     image to the device quicker than copying of flashing the entire image.

     The image file may be compressed: the block map describes the image
     after decompression. -->

<bmap version="2.0">
    <!-- Image size in bytes -->
    <ImageSize> %d </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> %d </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> %d </BlocksCount>

    <!-- Count of mapped blocks -->
    <MappedBlocksCount> %d </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> sha256 </ChecksumType>

    <!-- The checksum of this bmap file. When it is calculated, the value of
         the checksum has be zero (all ASCII "0" symbols).  -->
    <BmapFileChecksum> %s </BmapFileChecksum>

    <!-- The block map which consists of elements which may either be a
         range of blocks or a single block. The 'chksum' attribute
         (if present) is the checksum of this blocks range. -->
    <BlockMap>
`, m.ImageSize, m.BlockSize, blocks, mapped, zeros)
	for _, r := range m.Ranges {
		if r.First == r.Last {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", strings.ToLower(r.Checksum), r.First)
		} else {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", strings.ToLower(r.Checksum), r.First, r.Last)
		}
	}
	b.WriteString("    </BlockMap>\n</bmap>\n")
	raw := b.Bytes()
	sum := sha256.Sum256(raw)
	i := bytes.Index(raw, []byte(zeros))
	copy(raw[i:], hex.EncodeToString(sum[:]))
	_, err := w.Write(raw)
	return err
}
