package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"imgtool/blockmap"
	"imgtool/bmap"
	"imgtool/flash"
	"imgtool/image"
	"imgtool/internal/units"
	"imgtool/part"
)

type flashOptions struct {
	yes           bool
	unmount       bool
	full          bool
	bmapFile      string
	discard       bool
	zeroUnmapped  bool
	noVerify      bool
	checkCapacity bool
	json          bool
	sha256        string
}

// largeDisk is the size above which a target is unusual for an SD card or
// USB stick (128 GB as vendors count).
const largeDisk = 128_000_000_000

func newFlashCmd(g *globalOptions) *cobra.Command {
	var opts flashOptions
	cmd := &cobra.Command{
		Use:   "flash IMAGE DEVICE...",
		Short: "Write an image to SD cards or USB drives",
		Long: `Write IMAGE (any image imgtool reads, decoded while writing) to one or more disks at
once, then read each back and compare it with the image.

Only the data the partition table and the filesystems use is written: free space
inside FAT and ext2/3/4 filesystems keeps the card's old contents, which do not matter
to them. --full writes every byte; --bmap FILE writes the ranges of a bmaptool block
map instead, checking each range's checksum while writing. --zero-unmapped writes
zeros over what is not written and --discard discards it (TRIM).

Safety: imgtool refuses disks that hold the running system, disks with mounted
partitions (--unmount unmounts them first), read-only disks and disks smaller than the
image. When a disk is smaller than the image but the image's partitions fit, only the
bytes up to the end of the last partition are written. Before writing a disk imgtool
shows its model, size and partitions and asks for confirmation; --yes skips the
question (needed without a terminal). imgtool devices lists the disks.

A regular file is a valid DEVICE: it is created, or extended to the image's size.

--check-capacity first tests that each disk really holds its claimed size (fake cards
report more): it DESTROYS what the disk holds and takes a while.

Ctrl-C stops cleanly; the disk then holds an incomplete image.`,
		Example: `  imgtool devices
  sudo imgtool flash raspios.img /dev/sdb
  sudo imgtool flash --bmap raspios.img.bmap raspios.img /dev/sdb
  sudo imgtool flash --yes --unmount backup.img /dev/sdb /dev/sdc
  sudo imgtool flash --check-capacity --full raspios.img /dev/mmcblk0
  imgtool flash raspios.img copy.img`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFlash(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.yes, "yes", "y", false, "do not ask for confirmation (for scripts)")
	f.BoolVar(&opts.unmount, "unmount", false, "unmount the disks' partitions first")
	f.BoolVar(&opts.full, "full", false, "write every byte of the image, free space included")
	f.StringVar(&opts.bmapFile, "bmap", "", "write the ranges listed in this bmaptool block map `FILE`")
	f.BoolVar(&opts.discard, "discard", false, "discard (TRIM) the ranges that are not written")
	f.BoolVar(&opts.zeroUnmapped, "zero-unmapped", false, "write zeros over the ranges that are not written")
	f.BoolVar(&opts.noVerify, "no-verify", false, "do not read the disks back to compare")
	f.BoolVar(&opts.checkCapacity, "check-capacity", false, "first test each disk for fake capacity (DESTROYS its content)")
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	f.StringVar(&opts.sha256, "sha256", "", sha256Flag)
	return cmd
}

// flashTarget is one DEVICE argument.
type flashTarget struct {
	path   string
	device bool
	dev    flash.Device // for devices
}

// flashSummary is the JSON summary of flash.
type flashSummary struct {
	Image        string   `json:"image"`
	Targets      []string `json:"targets"`
	ImageSize    int64    `json:"image_size"`
	Size         int64    `json:"size"` // bytes of the image that were considered
	BlockMap     string   `json:"block_map"`
	BytesWritten int64    `json:"bytes_written"`
	BytesSkipped int64    `json:"bytes_skipped"`
	Seconds      float64  `json:"seconds"`
	Rate         int64    `json:"bytes_per_second"`
	Verified     bool     `json:"verified"`
	SHA256       string   `json:"sha256,omitempty"`
	BmapRanges   int      `json:"bmap_ranges_checked,omitempty"`
	Notices      []string `json:"notices"`
	Warnings     []string `json:"warnings"`
}

func runFlash(ctx context.Context, opts flashOptions, args []string, g *globalOptions) error {
	limitMemory()
	if opts.full && opts.bmapFile != "" {
		return usagef("--full and --bmap exclude each other: --full writes every byte, --bmap only the mapped ranges")
	}
	if opts.discard && opts.zeroUnmapped {
		return usagef("--discard and --zero-unmapped exclude each other; choose one")
	}
	imgPath, paths := args[0], args[1:]
	sum := flashSummary{Image: imgPath, Targets: paths, Notices: []string{}, Warnings: []string{}}
	say := func(kind string, list *[]string, msg string) {
		*list = append(*list, msg)
		if !opts.json {
			fmt.Fprintf(g.stderr, "imgtool: %s: %s\n", kind, msg)
		}
	}
	notice := func(msg string) { say("note", &sum.Notices, msg) }
	warn := func(msg string) { say("warning", &sum.Warnings, msg) }

	if err := verifyInputChecksum(imgPath, opts.sha256); err != nil {
		return err
	}
	// Whether a compressed image that can only be decoded from the start
	// needs its temporary file depends on the block map: --full and --bmap
	// stream it once, straight to the disks.
	streamed := opts.full || opts.bmapFile != ""
	img, err := openFlashImage(imgPath, streamed)
	if err != nil {
		return err
	}
	defer img.Close()
	sum.ImageSize = img.Size()
	var lastEnd int64
	table := ""
	// Only the partition table is needed here (not inspect's look into
	// every filesystem).
	if tbl, err := readTable(img, streamed); err == nil {
		table = tbl.Kind.String()
		for _, p := range tbl.Partitions {
			lastEnd = max(lastEnd, p.End())
		}
	}

	// Classify and check the targets.
	var targets []flashTarget
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			return usagef("%s is given twice", p)
		}
		seen[p] = true
		if same(imgPath, p) {
			return usagef("%s is the image itself; give another target", p)
		}
		t := flashTarget{path: p, device: image.IsDevice(p)}
		if t.device {
			d, err := checkFlashDevice(p, opts, warn)
			if err != nil {
				return err
			}
			t.dev = d
		} else if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is neither a disk nor a regular file; give a disk (imgtool devices lists them) or an image file name", p)
		}
		targets = append(targets, t)
	}

	// Size: a disk smaller than the image is refused unless the partitions
	// fit, and then only up to their end is written.
	size := img.Size()
	for _, t := range targets {
		if !t.device || t.dev.Size >= img.Size() {
			continue
		}
		if lastEnd <= 0 || lastEnd > t.dev.Size {
			return flash.CheckFits(t.path, img.Size(), t.dev.Size, lastEnd)
		}
		size = min(size, lastEnd)
	}
	if size < img.Size() {
		msg := fmt.Sprintf("a target is %s smaller than the image, but the partitions end at byte %d, which fits: writing only the first %d bytes (the rest of the image holds no partition)",
			units.Human(img.Size()-minDeviceSize(targets)), size, size)
		if table == "gpt" {
			msg += "; the backup GPT at the end of the image is not written: run sgdisk -e on the disk afterwards to recreate it"
		}
		notice(msg)
	}
	sum.Size = size

	if err := confirmFlash(imgPath, targets, opts, g); err != nil {
		return err
	}

	// Which ranges to write.
	src := img
	var ext []image.Extent
	var bm *bmap.Map
	switch {
	case opts.full:
		sum.BlockMap = "full"
	case opts.bmapFile != "":
		sum.BlockMap = "bmap"
		if bm, err = readBmap(opts.bmapFile, img.Size()); err != nil {
			return err
		}
		bm = bm.Clip(size)
		ext = bm.Extents()
		src = bmap.Verify(img, bm)
	default:
		// The image's own holes are not free space: inside a filesystem's
		// metadata they must be written as zeros, so the map comes from the
		// filesystems alone (no ZeroHoles).
		m, err := blockmap.Compute(img, blockmap.Options{})
		if err != nil {
			sum.BlockMap = "full"
			warn(fmt.Sprintf("cannot map the image's filesystems (%v); writing every byte", err))
			break
		}
		sum.BlockMap = "filesystems"
		ext = m.Extents
		var data int64
		for _, e := range dataRanges(ext, size) {
			data += e.Len
		}
		if free := size - data; free > 0 && !opts.zeroUnmapped && !opts.discard {
			notice(fmt.Sprintf("writing the %s the partition table and filesystems use; %s of free space is not written and keeps the disk's old contents, which do not matter to the filesystems (--full writes every byte)",
				units.Human(data), units.Human(free)))
		}
	}
	if size < img.Size() {
		src = truncateImage(src, size)
		if ext != nil {
			ext = clipExtents(ext, size)
		}
	}

	// Open the targets.
	var tgs []flash.Target
	defer func() {
		for _, t := range tgs {
			t.Close()
		}
	}()
	for _, t := range targets {
		tg, err := flash.OpenTarget(t.path, flash.OpenOptions{Create: !t.device})
		if err != nil {
			return err
		}
		tgs = append(tgs, tg)
	}

	var bar *progressBar
	var prog flash.Progress
	if isTerminal(g.stderr) && !opts.json {
		bar = newProgressBar(g.stderr)
		prog = bar
	}
	stopBar := func() {
		if bar != nil {
			bar.Done()
			bar = nil
		}
	}
	defer stopBar()

	if opts.checkCapacity {
		for i, t := range targets {
			if !t.device {
				notice(fmt.Sprintf("%s is a file: no capacity check", t.path))
				continue
			}
			if err := flash.CheckCapacity(ctx, tgs[i], prog); err != nil {
				if errors.Is(err, flash.ErrInterrupted) {
					return fmt.Errorf("interrupted during the capacity check; %s holds no usable image now", t.path)
				}
				return err
			}
		}
	}

	fo := flash.Options{BlockMap: ext, NoVerify: opts.noVerify, Progress: prog, LastPartitionEnd: lastEnd, Sequential: bm != nil}
	switch {
	case opts.discard:
		fo.Unmapped = flash.DiscardUnmapped
	case opts.zeroUnmapped:
		fo.Unmapped = flash.ZeroUnmapped
	}
	res, err := flash.Write(ctx, src, tgs, fo)
	stopBar()
	if err != nil {
		incomplete := strings.Join(paths, ", ")
		var ce *bmap.ChecksumError
		switch {
		case errors.Is(err, flash.ErrInterrupted) || ctx.Err() != nil:
			return fmt.Errorf("interrupted: %s now holds an incomplete image; flash it again before use", incomplete)
		case errors.As(err, &ce):
			return fmt.Errorf("%s: %v; %s now holds an incomplete image", opts.bmapFile, ce, incomplete)
		case errors.Is(err, flash.ErrVerify):
			return err
		}
		return fmt.Errorf("%w; %s now holds an incomplete image", err, incomplete)
	}
	if bm != nil {
		n, err := bmap.Done(src)
		if err != nil {
			return fmt.Errorf("%s: %w; %s may hold a damaged image", opts.bmapFile, err, strings.Join(paths, ", "))
		}
		sum.BmapRanges = n
	}
	for _, w := range res.Warnings {
		warn(w)
	}
	sum.BytesWritten, sum.BytesSkipped = res.BytesWritten, res.BytesSkipped
	sum.Seconds = res.Duration.Seconds()
	sum.Rate = int64(rateOf(res.BytesWritten, res.Duration))
	sum.Verified, sum.SHA256 = res.Verified, res.SHA256
	if opts.json {
		return writeJSON(g.stdout, sum)
	}
	verify := "not verified (--no-verify)"
	if res.Verified {
		verify = "verified"
	}
	line := fmt.Sprintf("Wrote %s to %s: %s written, %s skipped, in %s (%s/s); %s",
		imgPath, strings.Join(paths, ", "), units.Human(res.BytesWritten), units.Human(res.BytesSkipped),
		clock(res.Duration), units.Human(sum.Rate), verify)
	if res.SHA256 != "" {
		line += "; image sha256 " + res.SHA256
	}
	fmt.Fprintln(g.stdout, line)
	return nil
}

func minDeviceSize(ts []flashTarget) int64 {
	var m int64
	for _, t := range ts {
		if t.device && (m == 0 || t.dev.Size < m) {
			m = t.dev.Size
		}
	}
	return m
}

// checkFlashDevice runs the safety checks on a disk and unmounts it when
// asked. It returns the disk as listed after that.
func checkFlashDevice(path string, opts flashOptions, warn func(string)) (flash.Device, error) {
	d, err := flash.Find(path)
	if err != nil {
		return d, err
	}
	if sys, why := flash.IsSystemDisk(d); sys {
		return d, fmt.Errorf("%s holds the running system (%s); refusing to write it: choose another disk (imgtool devices lists them)", path, why)
	}
	if d.ReadOnly {
		return d, fmt.Errorf("%s is read-only; if it is an SD card, slide its lock switch away from LOCK and reinsert it", path)
	}
	if mps := d.MountPoints(); len(mps) > 0 {
		if !opts.unmount {
			return d, fmt.Errorf("%s has mounted partitions (%s); unmount them, or pass --unmount", path, strings.Join(mps, ", "))
		}
		if err := flash.Unmount(d); err != nil {
			return d, fmt.Errorf("unmounting %s: %w; close the programs using it and try again", path, err)
		}
		if d, err = flash.Find(path); err != nil {
			return d, err
		}
		if mps := d.MountPoints(); len(mps) > 0 {
			return d, fmt.Errorf("%s is still mounted at %s after unmounting; unmount it by hand and try again", path, strings.Join(mps, ", "))
		}
	}
	if d.Size > largeDisk {
		warn(fmt.Sprintf("%s is %s (%d bytes), unusually large for an SD card or USB stick: make sure it is the disk you mean", path, units.Human(d.Size), d.Size))
	}
	return d, nil
}

// confirmFlash shows the disks that will be erased and asks the user,
// unless --yes. Files are not asked about.
func confirmFlash(imgPath string, targets []flashTarget, opts flashOptions, g *globalOptions) error {
	var devs []flashTarget
	for _, t := range targets {
		if t.device {
			devs = append(devs, t)
		}
	}
	if len(devs) == 0 || opts.yes {
		return nil
	}
	names := make([]string, len(devs))
	for i, t := range devs {
		names[i] = t.path
	}
	if !isTerminalReader(g.stdin) || !isTerminal(g.stderr) {
		return fmt.Errorf("refusing to erase %s without confirmation: run imgtool on a terminal to be asked, or pass --yes", strings.Join(names, ", "))
	}
	w := g.stderr
	fmt.Fprintf(w, "This erases everything on:\n")
	for _, t := range devs {
		d := t.dev
		model := strings.TrimSpace(d.Vendor + " " + d.Model)
		if model == "" {
			model = "unknown model"
		}
		fmt.Fprintf(w, "  %s  %s  %s  %s (%d bytes)\n", d.Path, model, d.Transport, units.Human(d.Size), d.Size)
		if len(d.Partitions) == 0 {
			fmt.Fprintf(w, "      no partitions\n")
		}
		for _, p := range d.Partitions {
			fmt.Fprintf(w, "      %s  %s\n", p.Path, units.Human(p.Size))
		}
		if d.Size > largeDisk {
			fmt.Fprintf(w, "      this disk is larger than 128 GB: unusual for an SD card or USB stick\n")
		}
	}
	fmt.Fprintf(w, "Write %s to %s? Type yes to continue: ", imgPath, strings.Join(names, ", "))
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if a := strings.ToLower(strings.TrimSpace(line)); a != "yes" && a != "y" {
		return errors.New("not confirmed; nothing was written")
	}
	return nil
}

// isTerminalReader reports whether r is a terminal.
func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// readBmap reads and checks a .bmap file against the image size.
func readBmap(path string, imageSize int64) (*bmap.Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := bmap.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.ImageSize != imageSize {
		return nil, fmt.Errorf("%s describes an image of %d bytes, but the image is %d bytes; give the .bmap made for this image (bmaptool create IMAGE)", path, m.ImageSize, imageSize)
	}
	return m, nil
}

// clipExtents cuts extents at size.
func clipExtents(ext []image.Extent, size int64) []image.Extent {
	var out []image.Extent
	for _, e := range ext {
		if e.Off >= size {
			break
		}
		if e.End() > size {
			e.Len = size - e.Off
		}
		out = append(out, e)
	}
	return out
}

// truncated is the first size bytes of an image.
type truncated struct {
	image.Image
	size int64
}

// truncatedStream is a truncated image whose source streams.
type truncatedStream struct {
	truncated
	s interface{ Stream() (io.ReadCloser, error) }
}

// truncateImage returns the first size bytes of img, keeping its
// sequential Stream when it has one.
func truncateImage(img image.Image, size int64) image.Image {
	t := truncated{Image: img, size: size}
	if s, ok := image.As[flash.Streamer](img); ok {
		return &truncatedStream{truncated: t, s: s}
	}
	return &t
}

func (t *truncated) Size() int64 { return t.size }

func (t *truncated) ReadAt(p []byte, off int64) (int, error) {
	if off >= t.size {
		return 0, io.EOF
	}
	if rest := t.size - off; int64(len(p)) > rest {
		n, err := t.Image.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return t.Image.ReadAt(p, off)
}

func (t *truncated) Extents() ([]image.Extent, error) {
	ext, err := t.Image.Extents()
	if err != nil {
		return nil, err
	}
	return clipExtents(ext, t.size), nil
}

func (t *truncatedStream) Stream() (io.ReadCloser, error) {
	rc, err := t.s.Stream()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, t.size), rc}, nil
}

// openFlashImage opens IMAGE as openImage does, except that with streamed
// a compressed image that cannot be read at random is not decompressed
// into a temporary file first: flash then decodes it once, while writing.
// A damaged stream then fails during the write, which says that the disk
// holds an incomplete image.
func openFlashImage(path string, streamed bool) (image.Image, error) {
	if !streamed {
		return openImage(path)
	}
	return openUnspooled(path)
}

// tableHead is how much of an image that is only streamed is decoded to
// read its partition table: the MBR, a GPT's header and entries, and EBRs
// close to the start.
const tableHead = 1 << 20

// readTable reads the image's partition table. With streamed, an image
// that cannot be read at random has only its first tableHead bytes decoded
// for it; a table that needs bytes beyond them (a GPT's backup header, a
// far EBR) is then reported as unknown rather than read incompletely.
func readTable(img image.Image, streamed bool) (*part.Table, error) {
	s, ok := image.As[flash.Seekable](img)
	st, ok2 := image.As[flash.Streamer](img)
	if !streamed || !ok || s.Seekable() || !ok2 {
		return part.Read(img, img.Size())
	}
	rc, err := st.Stream()
	if err != nil {
		return nil, err
	}
	head := make([]byte, min(img.Size(), tableHead))
	n, err := io.ReadFull(rc, head)
	rc.Close()
	if err != nil {
		return nil, err
	}
	h := &headImage{head: head[:n], size: img.Size()}
	tbl, err := part.Read(h, h.size)
	// A GPT's entries come from its primary copy (its backup, at the end,
	// is only compared with it); an MBR read beyond the head may have lost
	// logical partitions.
	if err == nil && h.missed && tbl.Kind != part.GPT {
		return nil, errors.New("the partition table reaches past the start of the image")
	}
	return tbl, err
}

// headImage is the first bytes of an image; reads beyond them fail.
type headImage struct {
	head   []byte
	size   int64
	missed bool
}

func (h *headImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(h.head)) {
		h.missed = true
		return 0, errors.New("beyond the decoded start of the image")
	}
	return copy(p, h.head[off:]), nil
}

// memoryLimit is the soft limit of the heap for flash and read, whose live
// data (pipeline buffers, decoded frames, encoder windows) is well under
// it: the garbage collector then runs before the heap doubles the live
// data, which keeps the peak resident memory under 128 MiB. GOMEMLIMIT
// overrides it.
const memoryLimit = 80 << 20

// limitMemory sets memoryLimit unless GOMEMLIMIT is set.
func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
