// Package vdisk holds the shared pieces of the sequential VM-image
// writers: extent checks, the unit assembler, the ordered worker pool, the
// file-or-stream detection. It also holds the small cache the readers use.
package vdisk
