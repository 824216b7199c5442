package part_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"imgtool/internal/testimg"
	"imgtool/part"
)

// sfTable is the subset of `sfdisk --json` output the tests compare.
type sfTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdiskJSON(t *testing.T, dev string) sfTable {
	t.Helper()
	var s sfTable
	out := testimg.Run(t, "sfdisk", "--json", dev)
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("parsing sfdisk --json: %v\n%s", err, out)
	}
	return s
}

var nodeNumber = regexp.MustCompile(`(\d+)$`)

// compareSfdisk checks tbl against sfdisk's view of the same table.
func compareSfdisk(t *testing.T, tbl *part.Table, sf sfTable) {
	t.Helper()
	pt := sf.PartitionTable
	want := map[string]part.Kind{"dos": part.MBR, "gpt": part.GPT}[pt.Label]
	if tbl.Kind != want {
		t.Fatalf("kind %v, sfdisk says %q", tbl.Kind, pt.Label)
	}
	if tbl.SectorSize != pt.SectorSize {
		t.Errorf("sector size %d, sfdisk says %d", tbl.SectorSize, pt.SectorSize)
	}
	wantID := strings.ToLower(strings.TrimPrefix(pt.ID, "0x"))
	if tbl.DiskID != wantID {
		t.Errorf("disk id %q, sfdisk says %q", tbl.DiskID, wantID)
	}
	if len(tbl.Partitions) != len(pt.Partitions) {
		t.Fatalf("%d partitions, sfdisk lists %d: %+v", len(tbl.Partitions), len(pt.Partitions), pt.Partitions)
	}
	ss := int64(pt.SectorSize)
	for i, sp := range pt.Partitions {
		p := tbl.Partitions[i]
		num, _ := strconv.Atoi(nodeNumber.FindString(sp.Node))
		if p.Number != num {
			t.Errorf("partition %d: number %d, sfdisk node %s", i, p.Number, sp.Node)
		}
		if p.Start != sp.Start*ss || p.Size != sp.Size*ss {
			t.Errorf("partition %d: bytes %d+%d, sfdisk says sectors %d+%d", num, p.Start, p.Size, sp.Start, sp.Size)
		}
		switch tbl.Kind {
		case part.MBR:
			v, _ := strconv.ParseUint(sp.Type, 16, 8)
			if wt := fmt.Sprintf("0x%02x", v); p.Type != wt {
				t.Errorf("partition %d: type %s, sfdisk says %s", num, p.Type, sp.Type)
			}
			if p.Bootable != sp.Bootable {
				t.Errorf("partition %d: bootable %v, sfdisk says %v", num, p.Bootable, sp.Bootable)
			}
			if wu := fmt.Sprintf("%s-%02x", wantID, num); p.UUID != wu {
				t.Errorf("partition %d: uuid %s, want %s", num, p.UUID, wu)
			}
			if p.Extended != (v == 5 || v == 0xf || v == 0x85) || p.Logical != (num > 4) {
				t.Errorf("partition %d: extended %v logical %v", num, p.Extended, p.Logical)
			}
		case part.GPT:
			if p.Type != strings.ToLower(sp.Type) {
				t.Errorf("partition %d: type %s, sfdisk says %s", num, p.Type, sp.Type)
			}
			if p.UUID != strings.ToLower(sp.UUID) {
				t.Errorf("partition %d: uuid %s, sfdisk says %s", num, p.UUID, sp.UUID)
			}
			if p.Name != sp.Name {
				t.Errorf("partition %d: name %q, sfdisk says %q", num, p.Name, sp.Name)
			}
			if p.Bootable != strings.Contains(sp.Attrs, "LegacyBIOSBootable") {
				t.Errorf("partition %d: bootable %v, sfdisk attrs %q", num, p.Bootable, sp.Attrs)
			}
		}
	}
}

// sgInfo is what `sgdisk -i N` says of a partition.
type sgInfo struct {
	TypeGUID, UniqueGUID, Name string
	First, Last                int64
	Attrs                      uint64
}

var (
	reTypeGUID = regexp.MustCompile(`Partition GUID code: ([0-9A-F-]{36})`)
	reUnique   = regexp.MustCompile(`Partition unique GUID: ([0-9A-F-]{36})`)
	reFirst    = regexp.MustCompile(`First sector: (\d+)`)
	reLast     = regexp.MustCompile(`Last sector: (\d+)`)
	reAttrs    = regexp.MustCompile(`Attribute flags: ([0-9A-Fa-f]{16})`)
	reName     = regexp.MustCompile(`Partition name: '(.*)'`)
)

func sgdiskInfo(t *testing.T, dev string, n int) sgInfo {
	t.Helper()
	out := testimg.Run(t, "sgdisk", "-i", strconv.Itoa(n), dev)
	get := func(re *regexp.Regexp) string {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("sgdisk -i %d: no %v in\n%s", n, re, out)
		}
		return m[1]
	}
	var i sgInfo
	i.TypeGUID, i.UniqueGUID, i.Name = strings.ToLower(get(reTypeGUID)), strings.ToLower(get(reUnique)), get(reName)
	i.First, _ = strconv.ParseInt(get(reFirst), 10, 64)
	i.Last, _ = strconv.ParseInt(get(reLast), 10, 64)
	i.Attrs, _ = strconv.ParseUint(get(reAttrs), 16, 64)
	return i
}

// compareSgdisk checks every GPT partition against `sgdisk -i`.
func compareSgdisk(t *testing.T, tbl *part.Table, dev string) {
	t.Helper()
	ss := int64(tbl.SectorSize)
	for _, p := range tbl.Partitions {
		i := sgdiskInfo(t, dev, p.Number)
		if p.Type != i.TypeGUID || p.UUID != i.UniqueGUID || p.Name != i.Name || p.Attributes != i.Attrs ||
			p.Start != i.First*ss || p.End() != (i.Last+1)*ss {
			t.Errorf("partition %d: %+v; sgdisk -i says %+v", p.Number, p, i)
		}
	}
}

// sgdiskVerify runs sgdisk -v and fails unless it finds no problems.
func sgdiskVerify(t *testing.T, dev string) {
	t.Helper()
	out := testimg.Run(t, "sgdisk", "-v", dev)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v %s:\n%s", filepath.Base(dev), out)
	}
}

func readImage(t *testing.T, path string) *part.Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := part.Read(f, st.Size())
	if err != nil {
		t.Fatalf("part.Read(%s): %v", filepath.Base(path), err)
	}
	return tbl
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	testimg.Run(t, "cp", "--sparse=always", src, dst)
}

func hasWarning(tbl *part.Table, sub string) bool {
	for _, w := range tbl.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
