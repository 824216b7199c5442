package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

// memRW is an in-memory ReadWriterAt that cannot grow.
type memRW struct{ b []byte }

func (m *memRW) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.b)) {
		return 0, errEOFForTest
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, errEOFForTest
	}
	return n, nil
}

func (m *memRW) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write beyond the end of the image")
	}
	return copy(m.b[off:], p), nil
}

var errEOFForTest = fmt.Errorf("EOF: %w", errors.New("end of image"))

// runRC runs a tool and returns its combined output and exit code, failing
// the test only when the tool cannot be started.
func runRC(t testing.TB, name string, args ...string) (string, int) {
	t.Helper()
	p, err := testimg.LookPath(name)
	if err != nil {
		testimg.Skip(t, "%s not installed", name)
	}
	cmd := exec.Command(p, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "E2FSCK_CONFIG=/dev/null")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}

// fsckClean runs e2fsck -fn on an image file and fails the test unless it
// reports no problem.
func fsckClean(t testing.TB, path string) {
	t.Helper()
	out, rc := runRC(t, "e2fsck", "-fn", path)
	if rc != 0 {
		t.Fatalf("e2fsck -fn exit %d:\n%s", rc, out)
	}
}

// writeTemp writes data to a new file in dir.
func writeTemp(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// oracleReplay replays the journal of img with debugfs's journal_run on a
// copy and returns the result.
func oracleReplay(t testing.TB, img []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	p := writeTemp(t, dir, "oracle.img", img)
	out, rc := runRC(t, "debugfs", "-w", "-R", "journal_run", p)
	if rc != 0 || strings.Contains(out, "error") {
		t.Logf("debugfs journal_run exit %d: %s", rc, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// diffBlocks lists the blocks that differ between two images, ignoring the
// primary superblock's block (time stamps, write counters) and the journal
// superblock.
func diffBlocks(t testing.TB, a, b []byte) []int64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("sizes differ: %d and %d", len(a), len(b))
	}
	f, err := New(bytes.NewReader(a), int64(len(a)), WithoutVerify())
	if err != nil {
		t.Fatal(err)
	}
	bs := f.blockSize
	skip := map[int64]bool{SuperblockOffset / bs: true}
	if j, err := openJournal(f); err == nil {
		skip[int64(j.sbBlock)] = true
	}
	var out []int64
	for off := int64(0); off < int64(len(a)); off += bs {
		if skip[off/bs] {
			continue
		}
		if !bytes.Equal(a[off:off+bs], b[off:off+bs]) {
			out = append(out, off/bs)
		}
	}
	return out
}

// compareSuper checks the fields replay must get right in the primary
// superblocks of our result and the oracle's.
func compareSuper(t testing.TB, ours, theirs []byte) {
	t.Helper()
	a, _, err := repairReadSuper(bytes.NewReader(ours))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := repairReadSuper(bytes.NewReader(theirs))
	if err != nil {
		t.Fatal(err)
	}
	if a.FeatureIncompat != b.FeatureIncompat || a.FeatureCompat != b.FeatureCompat ||
		a.FreeBlocksCountLo != b.FreeBlocksCountLo || a.FreeInodesCount != b.FreeInodesCount ||
		a.LastOrphan != b.LastOrphan || a.InodesCount != b.InodesCount || a.BlocksCountLo != b.BlocksCountLo {
		t.Errorf("superblock differs from the oracle's: incompat %v / %v, free blocks %d / %d, free inodes %d / %d, last orphan %d / %d",
			a.FeatureIncompat, b.FeatureIncompat, a.FreeBlocksCountLo, b.FreeBlocksCountLo,
			a.FreeInodesCount, b.FreeInodesCount, a.LastOrphan, b.LastOrphan)
	}
}

func TestReplayCorpusOracle(t *testing.T) {
	testimg.NeedTools(t, "debugfs", "e2fsck")
	dir := testimg.CorpusDir(t, "e2fsprogs")
	for _, name := range []string{"j_recover_csum2_32bit", "j_recover_csum2_64bit", "j_recover_csum3_64bit"} {
		t.Run(name, func(t *testing.T) {
			img := testimg.Gunzip(t, filepath.Join(dir, name+".img.gz"))
			want := oracleReplay(t, img)
			ours := bytes.Clone(img)
			need, err := NeedsRecovery(bytes.NewReader(ours), int64(len(ours)))
			if err != nil || !need {
				t.Fatalf("NeedsRecovery = %v, %v; want true", need, err)
			}
			st, err := Replay(&memRW{ours}, int64(len(ours)))
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			t.Logf("%+v", st)
			if st.Replayed == 0 {
				t.Errorf("nothing replayed")
			}
			if d := diffBlocks(t, ours, want); len(d) > 0 {
				t.Errorf("%d blocks differ from debugfs journal_run, first %v", len(d), d[:min(len(d), 10)])
			}
			compareSuper(t, ours, want)
			if need, err := NeedsRecovery(bytes.NewReader(ours), int64(len(ours))); err != nil || need {
				t.Errorf("after Replay NeedsRecovery = %v, %v", need, err)
			}
			// The superblock must read back with a valid checksum.
			if _, err := New(bytes.NewReader(ours), int64(len(ours))); err != nil {
				t.Errorf("New after Replay: %v", err)
			}
		})
	}
}

// journalFixture makes a 64 MiB filesystem with mkfs.ext4 and the extra
// options, then logs two transactions with debugfs's journal writer: the
// first writes data blocks (the first one starting with the jbd2 magic, so
// that it is escaped in the log) to three free blocks near the end, the
// second revokes the middle one. It returns the image path, the three
// block numbers and the data.
func journalFixture(t *testing.T, jo string, mkfs ...string) (string, [3]uint64, []byte) {
	t.Helper()
	testimg.NeedTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 64<<20)
	testimg.Run(t, "mkfs.ext4", append(append([]string{"-q", "-F"}, mkfs...), img)...)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	fsys, err := New(f, st.Size())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	bs := fsys.blockSize
	last := fsys.blocks
	blks := [3]uint64{last - 40, last - 39, last - 30}
	data := make([]byte, 3*bs)
	for i := range data {
		data[i] = byte(i*7 + i/int(bs))
	}
	copy(data, []byte{0xC0, 0x3B, 0x39, 0x98}) // the jbd2 magic: escaped in the log
	dataPath := writeTemp(t, dir, "data", data)
	script := fmt.Sprintf("%s\njw -b %d,%d,%d %s\njc\n%s\njw -r %d\njc\n", jo, blks[0], blks[1], blks[2], dataPath, jo, blks[1])
	testimg.RunIn(t, []byte(script), "debugfs", "-w", "-f", "-", img)
	dump := testimg.Run(t, "debugfs", "-R", "logdump", img)
	if !strings.Contains(dump, "revoke table") || !strings.Contains(dump, "commit block") {
		t.Fatalf("debugfs did not log the transactions:\n%s", dump)
	}
	return img, blks, data
}

func TestReplayDebugfsJournal(t *testing.T) {
	for _, c := range []struct {
		name string
		jo   string
		mkfs []string
	}{
		{"csum_v3_64bit_4k", "jo", []string{"-b", "4096"}},
		{"csum_v3_32bit_4k", "jo", []string{"-b", "4096", "-O", "^64bit"}},
		{"no_csum_64bit_4k", "jo", []string{"-b", "4096", "-O", "^metadata_csum"}},
		{"no_csum_32bit_4k", "jo", []string{"-b", "4096", "-O", "^metadata_csum,^64bit"}},
		// debugfs's writer includes the revoke block in the v1 checksum
		// of the second transaction, which recovery (kernel and e2fsprogs)
		// does not: that commit fails its check and the log ends before it.
		{"v1_checksum_4k", "jo -c", []string{"-b", "4096", "-O", "^metadata_csum,^64bit"}},
		{"1k_blocks", "jo", []string{"-b", "1024"}},
		{"ext3_indirect_journal", "jo", []string{"-t", "ext3", "-b", "1024"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, blks, data := journalFixture(t, c.jo, c.mkfs...)
			orig, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			want := oracleReplay(t, orig)
			ours := bytes.Clone(orig)
			size := int64(len(ours))
			if need, err := NeedsRecovery(bytes.NewReader(ours), size); err != nil || !need {
				t.Fatalf("NeedsRecovery = %v, %v; want true", need, err)
			}
			st, err := Replay(&memRW{ours}, size)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			v1 := strings.Contains(c.jo, "-c")
			if (!v1 && (st.Transactions != 2 || st.Replayed != 2 || st.Revoked != 1)) ||
				(v1 && (st.Transactions != 1 || st.Replayed != 3 || st.Revoked != 0)) {
				t.Errorf("stats %+v; want 2 transactions, 2 replayed, 1 revoked (v1: 1, 3, 0)", st)
			}
			bs := int64(len(data) / 3)
			for i, b := range blks {
				got := ours[int64(b)*bs : int64(b+1)*bs]
				if i == 1 && !v1 {
					if !bytes.Equal(got, make([]byte, bs)) {
						t.Errorf("revoked block %d was written", b)
					}
					continue
				}
				if !bytes.Equal(got, data[int64(i)*bs:int64(i+1)*bs]) {
					t.Errorf("block %d does not hold the logged data (first bytes % x)", b, got[:8])
				}
			}
			if d := diffBlocks(t, ours, want); len(d) > 0 {
				t.Errorf("%d blocks differ from debugfs journal_run, first %v", len(d), d[:min(len(d), 10)])
			}
			compareSuper(t, ours, want)
			if need, _ := NeedsRecovery(bytes.NewReader(ours), size); need {
				t.Errorf("needs_recovery still set")
			}
			out := writeTemp(t, t.TempDir(), "ours.img", ours)
			fsckClean(t, out)
			if !strings.Contains(testimg.Run(t, "debugfs", "-R", "logdump", out), "Journal starts at block 0") {
				// An empty journal: s_start == 0.
				jsb := testimg.Run(t, "dumpe2fs", "-h", out)
				if !strings.Contains(jsb, "Journal start:            0") {
					t.Errorf("journal not reset:\n%s", jsb)
				}
			}
			if rep, err := Check(bytes.NewReader(ours), size); err != nil {
				t.Errorf("Check after Replay: %v", err)
			} else if len(rep.Warnings) > 0 {
				t.Logf("warnings: %v", rep.Warnings)
			}
		})
	}
}
