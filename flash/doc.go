// Package flash writes disk images to SD cards, USB drives and files, reads
// devices back, and lists the disks of the system.
//
// # Scope
//
//   - Devices: List and ListAll return whole disks with size, model, vendor,
//     serial, Transport, removable and read-only flags, and their partitions
//     with mount points and swap use. IsSystemDisk and CheckDevice are the
//     safety checks a command runs before asking the user to confirm;
//     CheckFits says by how many bytes an image is too large. Unmount
//     unmounts a disk's partitions.
//   - Writing: OpenTarget opens a device exclusively (or a regular file) and
//     Write copies an Image to one or more targets at once through a
//     pipeline (one reader or decoder, one hasher, one writer per target,
//     bounded buffers), writing only the Data ranges of a block map, then
//     flushes, verifies with SHA-256 per chunk reading around the page
//     cache, and rereads the partition table. Images that implement
//     Streamer are read front to back instead of by ReadAt, unless they
//     report through Seekable that ReadAt decodes only what it reads
//     (imgtool's own .zst): those are read by ReadAt, several chunks at
//     once, chunks cut at multiples of the chunk size so that each lies in
//     one frame, and the frames holding no mapped byte are never decoded.
//     A stream-only image is written whole without asking for its extents.
//   - CheckCapacity detects counterfeit cards by writing and reading back
//     markers across the whole device. It destroys the device's content.
//   - ReadDevice opens a device read-only as an Image for backups;
//     MountedReadWrite lists the mounts that make such a backup unsafe.
//
// # Platforms
//
// Linux is complete and tested with loop devices: disks from /sys/block,
// mounts from /proc/self/mountinfo (including devices stacked on a
// partition, such as LUKS or LVM), swap from /proc/swaps; O_EXCL opens,
// O_DIRECT, BLKFLSBUF, BLKDISCARD, BLKRRPART and umount2.
//
// Direct I/O is the default on Linux (DirectAuto): writing 256 MiB to a
// loop device, including the final flush, measured about 85–120 MB/s with
// O_DIRECT against 50–60 MB/s through the page cache (BenchmarkWriteLoop).
//
// macOS lists disks with "diskutil list -plist" and "diskutil info
// -plist", writes /dev/rdiskN for /dev/diskN with F_NOCACHE and unmounts
// with "diskutil unmountDisk". Windows probes \\.\PhysicalDrive0–63 with
// IOCTL_STORAGE_QUERY_PROPERTY and IOCTL_DISK_GET_LENGTH_INFO, maps drive
// letters with IOCTL_STORAGE_GET_DEVICE_NUMBER, writes unbuffered and
// write-through, and unmounts by locking and dismounting volumes. The
// decoding of diskutil's property lists and of the Windows storage
// descriptor is tested on every system; the macOS and Windows code that
// talks to real disks compiles but has not been run against hardware.
// Other systems support regular-file targets only.
//
// # Limits
//
//   - Writes and reads are rounded out to 4 KiB; a block map is rounded
//     out the same way, so a few bytes around each range may be written.
//   - Only Linux opens devices exclusively. On macOS and Windows callers
//     must unmount (Unmount) before writing.
//   - On macOS, regular-file targets are verified through the page cache.
//   - A failing write or verification stops all targets; each then holds
//     an incomplete image.
//   - CheckCapacity finds devices that drop writes, and devices that wrap
//     around at a multiple of its marker step (about 1/1024 of the claimed
//     size, rounded up to a power of two); others only by chance.
//
// # Security
//
// Writing a disk destroys its content. The package never picks a target by
// itself; callers must run CheckDevice and ask the user before Write or
// CheckCapacity. Library functions never print and never exit.
package flash
