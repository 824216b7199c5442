package extract

import (
	"path/filepath"
	"strings"
)

// maxNameLen is the longest name (in bytes) most host filesystems accept.
const maxNameLen = 255

// badName says why a name from the image must not be created on the host,
// or returns "" when it is safe as one path component.
func badName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case name == "." || name == "..":
		return "name is " + name
	case strings.IndexByte(name, 0) >= 0:
		return "name contains NUL"
	case strings.ContainsAny(name, `/\`):
		return "name contains a path separator"
	case filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return "absolute name"
	case len(name) > maxNameLen:
		return "name longer than 255 bytes"
	}
	return hostNameProblem(name)
}

// foldName is the key under which a case-insensitive host would merge two
// names.
func foldName(name string) string {
	return strings.ToLower(name)
}
