//go:build !windows

package extract

// hostNameProblem has nothing to add to badName on hosts where any byte but
// "/" and NUL may appear in a name.
func hostNameProblem(name string) string { return "" }
