package main

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"imgtool/fs"
	"imgtool/fs/meta"
	"imgtool/image"
	"imgtool/internal/units"
	"imgtool/part"
)

// target is a filesystem inside an opened image, reached through
// PART:PATH.
type target struct {
	img   image.Image
	table *part.Table
	part  part.Partition
	fsys  fs.FS
	info  *meta.Info
}

func (t *target) Close() error { return t.img.Close() }

// partInfo is a partition and what Identify found in it (nil: nothing).
type partInfo struct {
	p    part.Partition
	info *meta.Info
}

// splitPartPath splits "2:/etc/fstab" or "bootfs:/config.txt" into the
// partition selector and the io/fs path ("etc/fstab"). A spec without a
// selector ("/etc/fstab") gives an empty selector.
func splitPartPath(spec string) (sel, name string) {
	if i := strings.IndexByte(spec, ':'); i > 0 && !strings.ContainsAny(spec[:i], `/\`) {
		sel, spec = spec[:i], spec[i+1:]
	}
	return sel, fsPath(spec)
}

// fsPath turns a user path ("/etc/fstab", "etc/", "") into an io/fs path.
func fsPath(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// openTarget opens IMAGE and the filesystem that sel names: a partition
// number, a filesystem label or a GPT partition name (any case), or empty
// when the image holds a single filesystem.
func openTarget(imagePath, sel string, noVerify bool) (*target, error) {
	img, err := openImage(imagePath)
	if err != nil {
		return nil, err
	}
	t, err := selectTarget(img, imagePath, sel, noVerify)
	if err != nil {
		img.Close()
		return nil, err
	}
	return t, nil
}

func selectTarget(img image.Image, imagePath, sel string, noVerify bool) (*target, error) {
	tbl, err := part.Read(img, img.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: reading the partition table: %w", imagePath, err)
	}
	var cands []partInfo
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		sec := p.Section()
		info, _ := fs.Identify(sec, sec.Size())
		cands = append(cands, partInfo{p, info})
	}
	var chosen *partInfo
	switch {
	case sel != "":
		if n, err := strconv.Atoi(sel); err == nil {
			for i := range cands {
				if cands[i].p.Number == n {
					chosen = &cands[i]
				}
			}
		} else {
			for i := range cands {
				c := &cands[i]
				if strings.EqualFold(c.p.Name, sel) || c.info != nil && strings.EqualFold(c.info.Label, sel) {
					if chosen != nil {
						return nil, fmt.Errorf("%s: %q names more than one partition; use the partition number; the image has: %s", imagePath, sel, listPartitions(cands))
					}
					chosen = c
				}
			}
		}
		if chosen == nil {
			return nil, fmt.Errorf("%s: no partition %q; the image has: %s", imagePath, sel, listPartitions(cands))
		}
	default:
		var withFiles []int
		for i, c := range cands {
			if c.info != nil && c.info.Type != "swap" {
				withFiles = append(withFiles, i)
			}
		}
		if len(withFiles) != 1 {
			return nil, fmt.Errorf("%s: say which partition, as PART:PATH (e.g. 2:/etc/fstab or bootfs:/config.txt); the image has: %s", imagePath, listPartitions(cands))
		}
		chosen = &cands[withFiles[0]]
	}
	sec := chosen.p.Section()
	fsys, info, err := fs.Open(sec, sec.Size(), fs.Options{NoVerify: noVerify})
	if err != nil {
		if errors.Is(err, fs.ErrUnknown) {
			return nil, fmt.Errorf("%s: partition %d holds no filesystem imgtool can read (FAT or ext2/3/4)", imagePath, chosen.p.Number)
		}
		return nil, fmt.Errorf("%s: partition %d: %w", imagePath, chosen.p.Number, err)
	}
	return &target{img: img, table: tbl, part: chosen.p, fsys: fsys, info: info}, nil
}

// listPartitions describes the partitions for an error message.
func listPartitions(ps []partInfo) string {
	if len(ps) == 0 {
		return "no partitions"
	}
	var parts []string
	for _, pi := range ps {
		s := fmt.Sprintf("%d", pi.p.Number)
		switch {
		case pi.info == nil:
			s += " (no filesystem"
		default:
			s += " (" + pi.info.Type
			if pi.info.Label != "" {
				s += " \"" + pi.info.Label + "\""
			}
		}
		if pi.p.Name != "" {
			s += " name \"" + pi.p.Name + "\""
		}
		s += ", " + units.Human(pi.p.Size) + ")"
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
