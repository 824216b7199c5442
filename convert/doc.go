// Package convert copies a disk image into an output container (raw, sparse
// raw, xz, gzip, zstd and, through the table in formats.go, the VM formats),
// skipping what the filesystems say is free.
//
// # Scope
//
// Convert computes which ranges of the image matter (blockmap.Compute with
// ZeroHoles: free filesystem space, the tail after the last partition and the
// image's own holes become zeros), reads only those ranges (sequentially from
// a compressed image's Stream, without a temporary file, or with large
// ReadAt calls otherwise) and hands them to a Writer. With
// Options.KeepFreeData every byte is copied.
//
// Every Writer here is sequential: it is told the image size and its extents
// up front, then receives exactly the bytes of the Data extents, in order,
// concatenated, and never seeks (except the raw writer, which makes holes
// when its output is a regular file). So all of them can write to a pipe.
//
//   - xz: a multi-block .xz stream (CRC64 checks, an index listing every
//     block, sizes in every block header), blocks compressed in parallel
//     with the LZMA2 encoder of github.com/ulikunitz/xz/lzma. Stretches that
//     do not compress (high byte entropy) are stored as uncompressed LZMA2
//     chunks, and all-zero blocks reuse one encoding, so neither costs
//     compression time. Readers with random access (image/xz, xz -T0) decode
//     blocks independently.
//   - gzip: one gzip member per chunk, compressed in parallel; every gunzip
//     reads concatenated members.
//   - zstd: one Zstandard frame per chunk, compressed in parallel, followed
//     by a seek table (the Zstandard seekable format) unless
//     Options.NoSeekable. A chunk of zeros is a frame of RLE blocks, which
//     readers fill without decoding; output buffers are reused, so memory
//     stays at the chunks in flight and one window per encoder.
//   - raw and sparse: the image as is; Zero extents become holes when the
//     output is a regular file (sparse also leaves all-zero 4 KiB blocks
//     of data as holes), zeros when it is a pipe.
//
// The xz container (stream header, block headers, index, footer) and the
// seek table are written here.
//
// Specifications: The .xz File Format 1.2.1
// (https://tukaani.org/xz/xz-file-format.txt); RFC 1952 (gzip); RFC 8878
// (Zstandard) and the Zstandard seekable format
// (contrib/seekable_format/zstd_seekable_compression_format.md in the zstd
// repository); bmap-tools' block map format 2.0 for Options.Bmap.
//
// # Memory
//
// At most a few chunks per worker are in flight; with the default xz level
// (8 MiB dictionary, 8 MiB blocks) that stays well under 512 MiB on any
// number of cores.
package convert
