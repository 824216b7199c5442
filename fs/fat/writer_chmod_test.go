package fat

import (
	iofs "io/fs"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// TestWriterChmod checks the read-only attribute that Chmod sets against
// mattrib, and fsck.vfat after each change.
func TestWriterChmod(t *testing.T) {
	testimg.NeedTools(t, "mattrib")
	for _, sp := range wtSpecs {
		t.Run(sp.variant.String(), func(t *testing.T) {
			img := wtImage(t, sp)
			w := wtOpen(t, img)
			mtime := time.Date(2023, 3, 4, 5, 6, 8, 0, time.UTC) // FAT keeps even seconds
			if err := w.MkdirAll("dir/sub"); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFile("dir/A Long File Name.txt", []byte("data"), 0o644, mtime); err != nil {
				t.Fatal(err)
			}
			attr := func(p string) string {
				t.Helper()
				return testimg.Run(t, "mattrib", "-i", img, "::/"+p)
			}
			for _, c := range []struct {
				mode iofs.FileMode
				ro   bool
			}{{0o444, true}, {0o644, false}, {0o400, true}, {0o200, false}, {0o577, true}} {
				if err := w.Chmod("dir/A Long File Name.txt", c.mode); err != nil {
					t.Fatal(err)
				}
				wtFsck(t, img)
				if got := strings.Contains(attr("dir/A Long File Name.txt"), " R "); got != c.ro {
					t.Errorf("mode %o: read-only %v, want %v", c.mode, got, c.ro)
				}
				fi, err := w.reader().Stat("dir/A Long File Name.txt")
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]iofs.FileMode{true: 0o444, false: 0o644}[c.ro]; fi.Mode() != want || !fi.ModTime().Equal(mtime) {
					t.Errorf("mode %o: reader sees %v, %v", c.mode, fi.Mode(), fi.ModTime())
				}
			}
			// Directories and the root store nothing.
			before := testimg.FileSum(t, img)
			for _, p := range []string{"dir/sub", "."} {
				if err := w.Chmod(p, 0o555); err != nil {
					t.Errorf("Chmod(%s): %v", p, err)
				}
			}
			if testimg.FileSum(t, img) != before {
				t.Error("Chmod of a directory changed the image")
			}
			wtUnchanged(t, img, iofs.ErrNotExist, func() error { return w.Chmod("dir/none", 0o644) })
			wtUnchanged(t, img, iofs.ErrNotExist, func() error { return w.Chmod("none/x", 0o644) })
		})
	}
}
