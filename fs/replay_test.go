package fs

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

// TestJournalReplayedInMemory logs a new version of a file's data block in
// the journal (debugfs jo/jw/jc leaves needs_recovery set, as a live dd
// backup would) and checks that Open reads the replayed content while the
// image stays unchanged, and that NoReplay reads the disk as it is.
func TestJournalReplayedInMemory(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "debugfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("old content\n"), 0o644)
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 32<<20)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img)
	blk := strings.TrimSpace(testimg.Run(t, "debugfs", "-R", "bmap /a.txt 0", img))
	newBlock := append([]byte("new content\n"), make([]byte, 4096-12)...)
	nb := filepath.Join(dir, "new")
	os.WriteFile(nb, newBlock, 0o644)
	testimg.RunIn(t, []byte("jo\njw -b "+blk+" "+nb+"\njc\n"), "debugfs", "-w", "-f", "-", img)

	data, _ := os.ReadFile(img)
	before := sha256.Sum256(data)
	r := bytes.NewReader(data)
	info, err := Identify(r, int64(len(data)))
	if err != nil || !info.NeedsRecovery {
		t.Fatalf("Identify: %+v, %v; want needs recovery", info, err)
	}
	f, _, err := Open(r, int64(len(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadFile("a.txt")
	if err != nil || string(got[:12]) != "new content\n" {
		t.Errorf("replayed read: %q, %v", got, err)
	}
	w, ok := f.(interface{ Warnings() []string })
	if !ok || !strings.Contains(strings.Join(w.Warnings(), " "), "replayed in memory") {
		t.Errorf("no note about the replay")
	}
	if sha256.Sum256(data) != before {
		t.Errorf("the image changed")
	}
	plain, _, err := Open(r, int64(len(data)), Options{NoReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := plain.ReadFile("a.txt"); string(got) != "old content\n" {
		t.Errorf("NoReplay read %q, want the on-disk content", got)
	}
}
