// Package inspect describes a disk image: its container, its partition
// table and the filesystem of every partition, as a Report that the CLI
// prints as a table or as JSON. It never prints.
//
// It also says how the root filesystem grows on first boot (expand) and
// what first-boot customisation the boot partition arms
// (customize.ReadArmed), reading only a few small files of the FAT boot
// partition.
//
// Figures come from the filesystems' own allocation structures where a
// reader can compute them (UsageSource "bitmap"), else from the header
// counters ("counters").
package inspect

import (
	"fmt"

	"imgtool/customize"
	"imgtool/expand"
	"imgtool/fs"
	"imgtool/image"
	"imgtool/part"
)

// Report is what inspect knows of an image. Sizes and offsets are bytes.
type Report struct {
	Path               string      `json:"path"`
	Size               int64       `json:"size"`
	Format             string      `json:"format"`
	Table              string      `json:"table"`
	DiskID             string      `json:"disk_id"`
	SectorSize         int         `json:"sector_size"`
	EndOfLastPartition int64       `json:"end_of_last_partition"`
	Partitions         []Partition `json:"partitions"`
	Warnings           []string    `json:"warnings,omitempty"`
	Fits               *Fits       `json:"fits,omitempty"`
	// Expansion says how the OS grows its root filesystem on first boot
	// and whether it will (nil when no partition holds ext2/3/4).
	Expansion *expand.Status `json:"expansion,omitempty"`
	// FirstBoot is the first-boot customisation armed on the boot
	// partition (firstrun.sh, cloud-init seed, custom.toml …); nil when
	// nothing is armed or there is no FAT partition.
	FirstBoot *customize.Armed `json:"first_boot,omitempty"`
}

// Partition is one partition and its filesystem (nil when none is
// recognised).
type Partition struct {
	Number     int         `json:"number"`
	Start      int64       `json:"start"`
	Size       int64       `json:"size"`
	End        int64       `json:"end"`
	Type       string      `json:"type"`
	TypeName   string      `json:"type_name,omitempty"`
	Name       string      `json:"name"`
	UUID       string      `json:"uuid"`
	Bootable   bool        `json:"bootable"`
	Logical    bool        `json:"logical,omitempty"`
	Extended   bool        `json:"extended,omitempty"`
	Truncated  bool        `json:"truncated,omitempty"`
	Filesystem *Filesystem `json:"filesystem"`
}

// Filesystem describes a recognised filesystem.
type Filesystem struct {
	Type          string   `json:"type"`
	Variant       string   `json:"variant,omitempty"`
	Label         string   `json:"label"`
	UUID          string   `json:"uuid"`
	Size          int64    `json:"size"`
	Used          int64    `json:"used"`
	Free          int64    `json:"free"`
	UsageSource   string   `json:"usage_source"`
	BlockSize     int64    `json:"block_size,omitempty"`
	Blocks        int64    `json:"blocks,omitempty"`
	FreeBlocks    int64    `json:"free_blocks,omitempty"`
	Features      []string `json:"features,omitempty"`
	NeedsRecovery bool     `json:"needs_recovery,omitempty"`
	Warnings      []string `json:"warnings,omitempty"`
}

// Fits answers whether the image fits on a card of CardSize bytes.
type Fits struct {
	CardSize int64 `json:"card_size"`
	// Whole is true when the whole image file fits.
	Whole bool `json:"whole"`
	// Partitions is true when everything up to the end of the last
	// partition fits (what must be written).
	Partitions bool `json:"partitions"`
	// Margin is CardSize minus the end of the last partition: spare room
	// when positive, the shortfall when negative.
	Margin int64 `json:"margin"`
}

// Options tunes Build.
type Options struct {
	// CardSize, when positive, fills Report.Fits.
	CardSize int64
	// Exact computes used/free from the allocation maps (slower on large
	// filesystems; on by default in the CLI).
	Exact bool
	// NoVerify reads filesystems despite checksum mismatches.
	NoVerify bool
}

// Build inspects img; path is only recorded in the report.
func Build(img image.Image, path string, opt Options) (*Report, error) {
	size := img.Size()
	tbl, err := part.Read(img, size)
	if err != nil {
		return nil, fmt.Errorf("reading the partition table: %w", err)
	}
	r := &Report{
		Path:       path,
		Size:       size,
		Format:     img.Format(),
		Table:      tbl.Kind.String(),
		DiskID:     tbl.DiskID,
		SectorSize: tbl.SectorSize,
		Warnings:   append([]string(nil), tbl.Warnings...),
		Partitions: []Partition{},
	}
	for _, p := range tbl.Partitions {
		rp := Partition{
			Number: p.Number, Start: p.Start, Size: p.Size, End: p.End(),
			Type: p.Type, TypeName: p.TypeName, Name: p.Name, UUID: p.UUID,
			Bootable: p.Bootable, Logical: p.Logical, Extended: p.Extended, Truncated: p.Truncated,
		}
		if p.End() > r.EndOfLastPartition {
			r.EndOfLastPartition = p.End()
		}
		if !p.Extended {
			rp.Filesystem = describe(p, opt, &r.Warnings)
		}
		r.Partitions = append(r.Partitions, rp)
	}
	boot, root, cmdline, _ := systemFS(tbl)
	if root != nil {
		st := expand.Detect(root, cmdline)
		r.Expansion = &st
	}
	if boot != nil {
		armed, err := customize.ReadArmed(boot, root)
		if err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("first boot: %v", err))
		}
		r.FirstBoot = armed
	}
	if opt.CardSize > 0 {
		r.Fits = &Fits{
			CardSize:   opt.CardSize,
			Whole:      size <= opt.CardSize,
			Partitions: r.EndOfLastPartition <= opt.CardSize,
			Margin:     opt.CardSize - r.EndOfLastPartition,
		}
	}
	return r, nil
}

func describe(p part.Partition, opt Options, warnings *[]string) *Filesystem {
	sec := p.Section()
	info, err := fs.Identify(sec, sec.Size())
	if err != nil {
		if err != fs.ErrUnknown { // a recognised but damaged header
			*warnings = append(*warnings, fmt.Sprintf("partition %d: %v", p.Number, err))
		}
		return nil
	}
	f := &Filesystem{
		Type: info.Type, Variant: info.Variant, Label: info.Label, UUID: info.UUID,
		Size: info.Size, Used: info.Used, Free: info.Free, UsageSource: "counters",
		BlockSize: info.BlockSize, Blocks: info.Blocks, Features: info.Features,
		NeedsRecovery: info.NeedsRecovery,
	}
	if info.FreeBlocks >= 0 {
		f.FreeBlocks = info.FreeBlocks
	}
	if !opt.Exact || info.Type == "swap" {
		return f
	}
	fsys, _, err := fs.Open(sec, sec.Size(), fs.Options{NoVerify: opt.NoVerify})
	if err != nil {
		f.Warnings = append(f.Warnings, fmt.Sprintf("cannot read the filesystem: %v", err))
		return f
	}
	if w, ok := fsys.(interface{ Warnings() []string }); ok {
		f.Warnings = append(f.Warnings, w.Warnings()...)
	}
	u, err := fsys.Usage()
	if err != nil {
		f.Warnings = append(f.Warnings, fmt.Sprintf("cannot compute usage: %v", err))
		return f
	}
	f.Size, f.Used, f.Free, f.UsageSource = u.Total, u.Used, u.Free, "bitmap"
	return f
}

// systemFS finds the root filesystem (the last ext2/3/4 partition) and
// the boot partition (the first FAT partition with a cmdline.txt, else the
// first FAT partition), with its kernel command line. Both stay nil when
// missing.
func systemFS(tbl *part.Table) (boot, root fs.FS, cmdline string, haveCmdline bool) {
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		sec := p.Section()
		info, err := fs.Identify(sec, sec.Size())
		if err != nil {
			continue
		}
		switch info.Type {
		case "ext2", "ext3", "ext4":
			if f, _, err := fs.Open(sec, sec.Size(), fs.Options{NoVerify: true}); err == nil {
				root = f
			}
		case "vfat":
			if haveCmdline {
				continue
			}
			if f, _, err := fs.Open(sec, sec.Size(), fs.Options{}); err == nil {
				if b, err := f.ReadFile("cmdline.txt"); err == nil {
					boot, cmdline, haveCmdline = f, string(b), true
				} else if boot == nil {
					boot = f
				}
			}
		}
	}
	return boot, root, cmdline, haveCmdline
}
