package customize

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"time"

	"imgtool/fs/ext4"
	"imgtool/fs/fat"
)

// ErrNoSymlinks is returned when a symbolic link is asked of a FAT
// filesystem.
var ErrNoSymlinks = errors.New("customize: FAT filesystems have no symbolic links")

// Editor changes files in one filesystem. Paths are slash-separated and
// relative to the filesystem's root ("etc/hostname"). Mkdir fails with an
// error wrapping fs.ErrExist when the name exists. Close writes what the
// filesystem keeps in memory; nothing is complete before it succeeds.
type Editor interface {
	WriteFile(name string, data []byte, mode iofs.FileMode, uid, gid uint32) error
	Mkdir(name string, mode iofs.FileMode, uid, gid uint32) error
	Symlink(target, name string) error
	Remove(name string) error
	Close() error
}

// FATEditor adapts a fat.Writer: owners and modes are not stored (FAT has
// none) and times come from Clock.
type FATEditor struct {
	W     *fat.Writer
	Clock func() time.Time
}

func (e *FATEditor) now() time.Time {
	if e.Clock != nil {
		return e.Clock()
	}
	return time.Now()
}

// WriteFile creates or replaces a file.
func (e *FATEditor) WriteFile(name string, data []byte, _ iofs.FileMode, _, _ uint32) error {
	return e.W.WriteFile(name, data, 0o644, e.now())
}

// Mkdir creates a directory.
func (e *FATEditor) Mkdir(name string, _ iofs.FileMode, _, _ uint32) error { return e.W.Mkdir(name) }

// Symlink fails: FAT has no symbolic links.
func (e *FATEditor) Symlink(_, name string) error {
	return fmt.Errorf("%s: %w", name, ErrNoSymlinks)
}

// Remove deletes a file or an empty directory.
func (e *FATEditor) Remove(name string) error { return e.W.Remove(name) }

// Close closes the writer.
func (e *FATEditor) Close() error { return e.W.Close() }

// Ext4Editor adapts an ext4.Writer.
type Ext4Editor struct{ W *ext4.Writer }

// WriteFile creates or replaces a regular file.
func (e *Ext4Editor) WriteFile(name string, data []byte, mode iofs.FileMode, uid, gid uint32) error {
	return e.W.WriteFile(name, data, mode, uid, gid)
}

// Mkdir creates a directory.
func (e *Ext4Editor) Mkdir(name string, mode iofs.FileMode, uid, gid uint32) error {
	err := e.W.Mkdir(name, mode, uid, gid)
	if errors.Is(err, ext4.ErrExist) {
		return fmt.Errorf("%w (%w)", iofs.ErrExist, err)
	}
	return err
}

// Symlink creates or replaces a symbolic link.
func (e *Ext4Editor) Symlink(target, name string) error { return e.W.Symlink(target, name) }

// Remove deletes a file, a symbolic link or an empty directory.
func (e *Ext4Editor) Remove(name string) error {
	err := e.W.Remove(name)
	if errors.Is(err, ext4.ErrIsDir) {
		return e.W.Rmdir(name)
	}
	return err
}

// Close writes bitmaps, descriptors and counters.
func (e *Ext4Editor) Close() error { return e.W.Close() }
