package fat

import (
	"fmt"
	"io"
	iofs "io/fs"
	"time"
)

// ReplaceFile replaces the content of the existing regular file at path
// (slash-separated, from the root) with data, through the Writer: the new
// content is written to free clusters first, then the directory entry is
// switched to it and the old chain freed, so a crash leaves either the old
// or the new file (and at worst lost clusters). Every copy of the FAT and
// the FAT32 FSInfo are kept in step; the entry gets the new size and the
// current time (UTC). The file keeps its name and read-only attribute. It
// does not create files.
func ReplaceFile(rw interface {
	io.ReaderAt
	io.WriterAt
}, size int64, path string, data []byte) error {
	f, err := New(rw, size)
	if err != nil {
		return err
	}
	st, err := f.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("fat: replace %s: is a directory", path)
	}
	w, err := OpenWriter(rw, size)
	if err != nil {
		return err
	}
	if err := w.WriteFile(path, data, st.Mode()&iofs.ModePerm, time.Now().UTC()); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
