//go:build !(linux || darwin)

package spool

import (
	"os"
	"testing"
)

func allocated(*testing.T, *os.File) int64 { return -1 }
