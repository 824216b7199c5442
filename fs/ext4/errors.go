package ext4

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrCorrupt is wrapped by errors about inconsistent metadata.
	ErrCorrupt = errors.New("ext4: corrupt filesystem")
	// ErrChecksum is wrapped by metadata checksum mismatches; WithoutVerify
	// reads past them.
	ErrChecksum = errors.New("ext4: checksum mismatch")
	// ErrUnsupported is wrapped when the filesystem uses a feature this
	// reader cannot read correctly (encryption, casefolding, compression,
	// unknown incompatible features).
	ErrUnsupported = errors.New("ext4: unsupported feature")
	// ErrLoop is returned when resolving a path meets more than 40 symbolic
	// links or a directory that contains one of its ancestors.
	ErrLoop = errors.New("ext4: too many levels of symbolic links or directory loop")
	// ErrNotDir is returned when a path goes through something that is not
	// a directory.
	ErrNotDir = errors.New("ext4: not a directory")
	// ErrTooLarge is returned when a size read from the image exceeds the
	// limits of this reader.
	ErrTooLarge = errors.New("ext4: metadata too large")
)

// FormatError reports a problem found in the filesystem's metadata: where
// (filesystem block and byte offset, -1 when not known), what, and the
// sentinel it wraps (ErrCorrupt, ErrChecksum, ErrTooLarge, ErrUnsupported).
type FormatError struct {
	Block int64  // filesystem block holding the bad metadata; -1 if none
	Off   int64  // byte offset from the start of the filesystem; -1 if none
	What  string // the object: "superblock", "inode 12", "group 3 descriptor"
	Msg   string
	Err   error
}

// Error formats the error with the block (or offset) and the object.
func (e *FormatError) Error() string {
	s := "ext4: "
	if e.Block >= 0 {
		s += fmt.Sprintf("block %d: ", e.Block)
	} else if e.Off >= 0 {
		s += fmt.Sprintf("offset %d: ", e.Off)
	}
	if e.What != "" {
		s += e.What + ": "
	}
	return s + e.Msg
}

// Unwrap returns the sentinel the error belongs to.
func (e *FormatError) Unwrap() error {
	if e.Err == nil {
		return ErrCorrupt
	}
	return e.Err
}

func corruptf(block int64, what, format string, args ...any) error {
	return &FormatError{Block: block, Off: -1, What: what, Msg: fmt.Sprintf(format, args...), Err: ErrCorrupt}
}

func csumError(block int64, what string) error {
	return &FormatError{Block: block, Off: -1, What: what, Msg: "checksum mismatch (use WithoutVerify to read anyway)", Err: ErrChecksum}
}
