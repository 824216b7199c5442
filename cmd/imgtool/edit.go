package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"strings"

	"imgtool/customize"
	"imgtool/fs/ext4"
	"imgtool/fs/fat"
	"imgtool/image"
	"imgtool/part"
	"imgtool/shrink/undo"
)

// editSession is an image file opened for changes through its undo log:
// every write first saves the bytes it replaces, so that an interrupted
// command leaves an undo file that the next imgtool run rolls back.
type editSession struct {
	path string
	lg   *undo.Log
	img  image.Image // reads through the log
	fss  []*editFS
}

// editFS is one filesystem of an editSession: a reader of its current
// state and an editor.
type editFS struct {
	*target
	ed   customize.Editor
	fat  *fat.Writer  // nil for ext2/3/4
	ext4 *ext4.Writer // nil for FAT
}

// beginEdit opens the raw image at path for changes.
func beginEdit(path string) (*editSession, error) {
	img, err := openImage(path) // rolls back what an interrupted run left
	if err != nil {
		return nil, err
	}
	format := img.Format()
	img.Close()
	if format != "raw" {
		return nil, fmt.Errorf("%s is a %s image; imgtool changes raw images only: run imgtool convert to make a raw copy and change that", path, format)
	}
	lg, err := undo.Begin(path)
	if err != nil {
		if errors.Is(err, undo.ErrExists) {
			return nil, fmt.Errorf("%s: another imgtool command is changing this image (or one was interrupted): wait for it, or run imgtool shrink --undo %s: %w", path, path, err)
		}
		return nil, err
	}
	return &editSession{path: path, lg: lg, img: image.NewReader(lg, lg.Size())}, nil
}

// open opens the filesystem that sel names (as in PART:PATH) for changes.
func (s *editSession) open(sel string) (*editFS, error) {
	t, err := selectTarget(s.img, s.path, sel, false)
	if err != nil {
		return nil, err
	}
	for _, f := range s.fss {
		if f.part.Number == t.part.Number {
			return f, nil
		}
	}
	return s.openTarget(t)
}

// openType opens the first partition holding a filesystem of one of the
// types ("vfat", "ext4" …) for changes; nil when there is none.
func (s *editSession) openType(types ...string) (*editFS, error) {
	for _, f := range s.fss {
		for _, ty := range types {
			if f.info.Type == ty {
				return f, nil
			}
		}
	}
	tbl, err := part.Read(s.img, s.img.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: reading the partition table: %w", s.path, err)
	}
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		t, err := selectTarget(s.img, s.path, fmt.Sprint(p.Number), false)
		if err != nil {
			continue
		}
		for _, ty := range types {
			if t.info.Type == ty {
				return s.openTarget(t)
			}
		}
	}
	return nil, nil
}

func (s *editSession) openTarget(t *target) (*editFS, error) {
	rw := struct {
		io.ReaderAt
		io.WriterAt
	}{t.part.Section(), t.part.WriterAt(s.lg)}
	f := &editFS{target: t}
	switch t.info.Type {
	case "vfat":
		w, err := fat.OpenWriter(rw, t.part.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: partition %d: %w", s.path, t.part.Number, err)
		}
		f.ed, f.fat = &customize.FATEditor{W: w}, w
	case "ext2", "ext3", "ext4":
		w, err := ext4.OpenWriter(rw, t.part.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: partition %d: %w (run e2fsck on it first)", s.path, t.part.Number, err)
		}
		f.ed, f.ext4 = &customize.Ext4Editor{W: w}, w
	default:
		return nil, fmt.Errorf("%s: partition %d holds %s; imgtool changes FAT and ext2/3/4 filesystems only", s.path, t.part.Number, t.info.Type)
	}
	s.fss = append(s.fss, f)
	return f, nil
}

// finish closes the editors and commits the undo log when err is nil and
// every Close succeeded; otherwise it restores the image and returns the
// error.
func (s *editSession) finish(err error) error {
	for _, f := range s.fss {
		if err != nil {
			break
		}
		if cerr := f.ed.Close(); cerr != nil {
			err = fmt.Errorf("%s: partition %d: %w", s.path, f.part.Number, cerr)
		}
	}
	if err != nil {
		if aerr := s.lg.Abort(); aerr != nil {
			return fmt.Errorf("%w; restoring the image also failed: %v (run imgtool shrink --undo %s)", err, aerr, s.path)
		}
		return err
	}
	return s.lg.Commit()
}

// editError rewrites the writers' errors as what the user should do.
func editError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fat.ErrFull), errors.Is(err, fat.ErrDirFull), strings.Contains(err.Error(), "no free"), strings.Contains(err.Error(), "not enough"):
		return fmt.Errorf("%s: %w: the filesystem is full; remove files or grow the partition first; nothing was changed", name, err)
	case errors.Is(err, fat.ErrBadName):
		return fmt.Errorf("%s: %w: FAT forbids this name; choose another; nothing was changed", name, err)
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("%s: %w: its folder does not exist (create it with imgtool mkdir -p); nothing was changed", name, err)
	}
	return fmt.Errorf("%s: %w; nothing was changed", name, err)
}
