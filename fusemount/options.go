package fusemount

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log"
	"strings"
	"time"
	"unicode"
)

// Errors, matched with errors.Is.
var (
	// ErrNotAvailable is returned where FUSE cannot be used: an operating
	// system without FUSE support, a missing /dev/fuse or a missing
	// fusermount3. The message says what to install.
	ErrNotAvailable = errors.New("fusemount: FUSE is not available")
	// ErrBusy is returned by Unmount when a program still has a file or
	// folder open inside the mount.
	ErrBusy = errors.New("fusemount: mount point is busy")
	// ErrNotMounted is returned by Unmount for a path that is not a FUSE
	// mount point.
	ErrNotMounted = errors.New("fusemount: not a FUSE mount point")
)

// DefaultTimeout is how long the kernel may cache names and attributes
// when Options.Timeout is zero. The content of an image cannot change
// under the mount, so a long time is safe.
const DefaultTimeout = time.Hour

// Options tunes Mount and MountPartitions.
type Options struct {
	// AllowOther lets other users, root included, see the files. The
	// kernel then enforces the permission bits stored in the image. When
	// not root it needs user_allow_other in /etc/fuse.conf.
	AllowOther bool
	// Debug logs every FUSE request to Logger.
	Debug bool
	// Logger receives Debug output and the errors behind EIO replies
	// (damaged files). Nil discards them.
	Logger *log.Logger
	// FsName is the source shown in mount tables (/proc/mounts, df);
	// default "imgtool".
	FsName string
	// Subtype names the mount type, "fuse.<Subtype>"; default "imgtool".
	Subtype string
	// BlockSize is the block size statfs reports (the filesystem's block
	// or cluster size); default 4096.
	BlockSize int64
	// Timeout is how long the kernel caches names and attributes; default
	// DefaultTimeout.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.FsName == "" {
		o.FsName = "imgtool"
	}
	if o.Subtype == "" {
		o.Subtype = "imgtool"
	}
	if o.BlockSize <= 0 || o.BlockSize > 1<<20 {
		o.BlockSize = 4096
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = log.New(io.Discard, "", 0)
	}
	return o
}

// Partition is one partition shown by MountPartitions.
type Partition struct {
	// Number is the partition number ("p2.img", "2-rootfs").
	Number int
	// Label is the filesystem label; it names the folder after the number.
	Label string
	// FS is the partition's filesystem, shown as a folder; nil when the
	// partition holds none that can be read.
	FS iofs.FS
	// BlockSize is the filesystem's block size, for statfs; 0: 4096.
	BlockSize int64
	// Raw is the partition's bytes, shown as "p<Number>.img"; nil: not
	// shown.
	Raw io.ReaderAt
	// Size is the length of Raw in bytes.
	Size int64
}

// FolderName returns the name of a partition's folder in a
// MountPartitions tree: the number, and the label made safe for a file
// name ("2-rootfs"; "1" without a label).
func FolderName(number int, label string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(label) {
		switch {
		case r == '-' || r == '_' || r == '.' || r == '+':
			b.WriteRune(r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	s := strings.Trim(b.String(), "._")
	if s == "" {
		return fmt.Sprint(number)
	}
	return fmt.Sprintf("%d-%s", number, s)
}

// RawName returns the name of a partition's raw file: "p<number>.img".
func RawName(number int) string { return fmt.Sprintf("p%d.img", number) }

// BackgroundError is returned by StartBackground when the background
// process exits before its mount is ready. Msg is what it wrote to
// standard error (its own error message), or how it exited.
type BackgroundError struct {
	Msg string
}

func (e *BackgroundError) Error() string { return e.Msg }
