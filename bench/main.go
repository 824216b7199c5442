// Command bench compares imgtool with the peer tools on the same input in
// one run and prints, for each row, the median wall time of both, their
// ratio (imgtool ÷ peer: below 1 means imgtool is faster) and the peak
// resident memory of each.
//
//	go run ./bench -imgtool bin/imgtool [-runs 5] [-size 4096] [-rows inspect]
//
// It builds a Pi-like image of -size MiB once (scripts/sample-image.sh) in
// -dir and reuses it while its parameters are unchanged. Rows are listed in
// rows.go; each names the imgtool command and the peer commands that do the
// same job, run in sequence (their times add up, their peak memory is the
// largest of them).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// env is what a row needs to build its command lines.
type env struct {
	imgtool string // path of the imgtool binary
	img     string // the 4 GiB Pi-like image
	dir     string // scratch folder for rows
	bootOff int64  // byte offset of partition 1
	rootOff int64  // byte offset of partition 2
	rootLen int64
}

// row is one comparison.
type row struct {
	name  string
	setup func(e *env) error // optional, run once before timing
	// teardown, optional, runs after the row (also when it failed), to
	// release what setup made (loop devices).
	teardown func(e *env)
	// prepare, optional, runs before every timed run of either side
	// (untimed), e.g. to copy a fresh image for a command that changes it.
	prepare func(e *env) error
	ours    func(e *env) []string
	peer    func(e *env) [][]string
	// size, optional, runs after the row and returns the size in bytes of
	// what each side wrote (for rows that compress).
	size func(e *env) (ours, peer int64)
}

type measure struct {
	Median  time.Duration `json:"median_ns"`
	PeakRSS int64         `json:"peak_rss_kib"`
}

type result struct {
	Row   string  `json:"row"`
	Ours  measure `json:"imgtool"`
	Peer  measure `json:"peer"`
	Ratio float64 `json:"ratio"`
	// Output sizes in bytes, for rows that write a file.
	OursSize int64  `json:"imgtool_size,omitempty"`
	PeerSize int64  `json:"peer_size,omitempty"`
	Error    string `json:"error,omitempty"`
}

func main() {
	imgtool := flag.String("imgtool", "bin/imgtool", "imgtool binary to measure")
	runs := flag.Int("runs", 5, "timed runs per command (the median is reported)")
	sizeMiB := flag.Int("size", 4096, "size of the Pi-like image in MiB")
	dataMiB := flag.Int("data", 300, "MiB of file data (and as much stale data) in its root filesystem")
	many := flag.Int("many", 50000, "small files in the root filesystem (for listing rows)")
	dir := flag.String("dir", "bench/out", "folder for the image and the results")
	only := flag.String("rows", "", "comma-separated row name prefixes to run (default all)")
	flag.Parse()
	os.Setenv("PATH", os.Getenv("PATH")+":/usr/sbin:/sbin")

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fatal(err)
	}
	bin, err := filepath.Abs(*imgtool)
	if err != nil {
		fatal(err)
	}
	e := &env{imgtool: bin, dir: *dir}
	e.img = filepath.Join(*dir, fmt.Sprintf("pi-%dM-%dM-%d.img", *sizeMiB, *dataMiB, *many))
	if _, err := os.Stat(e.img); err != nil {
		fmt.Fprintf(os.Stderr, "bench: building %s …\n", e.img)
		cmd := exec.Command("scripts/sample-image.sh", e.img, fmt.Sprint(*sizeMiB), fmt.Sprint(*dataMiB), fmt.Sprint(*many))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			os.Remove(e.img)
			fatal(fmt.Errorf("building the image: %w", err))
		}
	}
	if err := e.readLayout(); err != nil {
		fatal(err)
	}

	var results []result
	for _, r := range rows {
		if !selected(r.name, *only) {
			continue
		}
		res := result{Row: r.name}
		if err := runRow(e, r, *runs, &res); err != nil {
			res.Error = err.Error()
		}
		results = append(results, res)
		fmt.Fprintf(os.Stderr, "bench: %s done\n", r.name)
	}
	printResults(results)
	b, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(*dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
}

func selected(name, only string) bool {
	if only == "" {
		return true
	}
	for _, p := range strings.Split(only, ",") {
		if strings.HasPrefix(name, strings.TrimSpace(p)) {
			return true
		}
	}
	return false
}

// readLayout asks imgtool where the partitions are.
func (e *env) readLayout() error {
	out, err := exec.Command(e.imgtool, "inspect", "--counters", "--json", e.img).Output()
	if err != nil {
		return fmt.Errorf("imgtool inspect: %w", err)
	}
	var rep struct {
		Partitions []struct {
			Number int   `json:"number"`
			Start  int64 `json:"start"`
			Size   int64 `json:"size"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return err
	}
	if len(rep.Partitions) < 2 {
		return fmt.Errorf("%s: expected two partitions", e.img)
	}
	e.bootOff = rep.Partitions[0].Start
	e.rootOff, e.rootLen = rep.Partitions[1].Start, rep.Partitions[1].Size
	return nil
}

func runRow(e *env, r row, runs int, res *result) error {
	if r.teardown != nil {
		defer r.teardown(e)
	}
	if r.setup != nil {
		if err := r.setup(e); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	var before func() error
	if r.prepare != nil {
		before = func() error { return r.prepare(e) }
	}
	ours, err := timeSteps([][]string{r.ours(e)}, runs, before)
	if err != nil {
		return fmt.Errorf("imgtool: %w", err)
	}
	peer, err := timeSteps(r.peer(e), runs, before)
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	res.Ours, res.Peer = ours, peer
	if r.size != nil {
		res.OursSize, res.PeerSize = r.size(e)
	}
	if peer.Median > 0 {
		res.Ratio = float64(ours.Median) / float64(peer.Median)
	}
	return nil
}

// timeSteps runs the steps in sequence, runs times (after one warm-up run),
// and returns the median total time and the peak RSS of any step.
func timeSteps(steps [][]string, runs int, before func() error) (measure, error) {
	var m measure
	var totals []time.Duration
	for i := 0; i <= runs; i++ {
		if before != nil {
			if err := before(); err != nil {
				return m, fmt.Errorf("prepare: %w", err)
			}
		}
		var total time.Duration
		for _, argv := range steps {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Stdout = nil // discarded
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			total += time.Since(start)
			if err != nil {
				return m, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, firstLine(stderr.String()))
			}
			if rss := peakRSS(cmd.ProcessState); rss > m.PeakRSS {
				m.PeakRSS = rss
			}
		}
		if i > 0 { // the first run warms the page cache
			totals = append(totals, total)
		}
	}
	sort.Slice(totals, func(i, j int) bool { return totals[i] < totals[j] })
	m.Median = totals[len(totals)/2]
	return m, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func printResults(results []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\timgtool\tpeer\tratio\timgtool peak RSS\tpeer peak RSS\timgtool size\tpeer size\t")
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\terror: %s\t\t\t\t\t\t\t\n", r.Row, r.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.1f MiB\t%.1f MiB\t%s\t%s\t\n", r.Row, dur(r.Ours.Median), dur(r.Peer.Median), r.Ratio,
			float64(r.Ours.PeakRSS)/1024, float64(r.Peer.PeakRSS)/1024, mib(r.OursSize), mib(r.PeerSize))
	}
	tw.Flush()
}

func mib(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
