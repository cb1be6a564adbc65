// Command benchreport reads the output of `go test -bench` for ./tests/ on
// standard input, passes it through, and then prints each butterd figure
// beside the bare primitive measured in the same run, with the overhead,
// its limit and ok or OVER. It is a report, not a
// gate: it exits 0 whatever the figures are.
//
//	go test -run '^$' -bench . -benchtime 1000x ./tests/ | go run ./tests/benchreport
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// minOps is how many operations a figure must rest on (the limits ask for 1,000).
const minOps = 1000

// buttervolumePerVolume is what buttervolume's List takes per volume (one
// `btrfs subvolume show` each), in ns.
const buttervolumePerVolume = 8e6

// result is one benchmark's figures: ops, and metrics by unit (ns/op,
// median-ns/op, p99-ns/op, ...).
type result struct {
	ops     int
	metrics map[string]float64
}

func (r *result) median() float64 { return r.metric("median-ns/op") }
func (r *result) p99() float64    { return r.metric("p99-ns/op") }

// metric falls back to the mean when a benchmark reports no percentiles.
func (r *result) metric(unit string) float64 {
	if v, ok := r.metrics[unit]; ok {
		return v
	}
	return r.metrics["ns/op"]
}

// comparison pairs a service benchmark with its bare primitive; the limit
// is on the difference of the medians.
type comparison struct {
	label        string
	service      string
	serviceLabel string   // "service" when empty
	bare         []string // the first one present is used
	bareLabel    string
	limit        float64 // ns
	// note, when not nil, adds a remark after the verdict from the
	// service's figures.
	note func(s *result) string
}

var comparisons = []comparison{
	{label: "create volume", service: "BenchmarkStoreCreate", bare: []string{"BenchmarkBareCreate"}, bareLabel: "bare ioctl", limit: 100e3},
	{label: "snapshot (ro)", service: "BenchmarkStoreSnapshot", bare: []string{"BenchmarkBareSnapshot"}, bareLabel: "bare ioctl", limit: 500e3},
	{label: "remove snapshot", service: "BenchmarkStoreRemoveSnapshot", bare: []string{"BenchmarkBareDeleteSnapshot", "BenchmarkBareDelete"}, bareLabel: "bare ioctl", limit: 100e3},
	{label: "remove volume", service: "BenchmarkStoreRemoveVolume", bare: []string{"BenchmarkBareDelete"}, bareLabel: "bare ioctl", limit: 100e3},
}

// buttervolumeSnapshot is what buttervolume's CLI takes per snapshot, in ns.
const buttervolumeSnapshot = 300e6

// mgmtComparisons are butterd's management path (D-Bus, butterctl)
// against what it stands on or replaces, measured in the same run.
var mgmtComparisons = []comparison{
	{label: "D-Bus CreateSnapshot round trip", service: "BenchmarkDBusCreateSnapshot", serviceLabel: "D-Bus",
		bare: []string{"BenchmarkStoreSnapshot"}, bareLabel: "service call", limit: 1e6},
	{label: "butterctl snapshot vs btrfs subvolume snapshot -r", service: "BenchmarkButterctlSnapshot", serviceLabel: "butterctl",
		bare: []string{"BenchmarkBtrfsProgsSnapshot"}, bareLabel: "btrfs", limit: 0,
		note: func(s *result) string {
			return fmt.Sprintf("buttervolume's CLI takes ~%s per snapshot (%s butterctl's median)",
				dur(buttervolumeSnapshot), ratio(buttervolumeSnapshot, s.median()))
		}},
}

// rateComparison pairs butterd's replication throughput with its
// primitive's on the same data, in MB/s of the volume's data; the limit is
// on their ratio.
type rateComparison struct {
	label   string
	service []named // the first one present is used
	bare    named
	min     float64
}

type named struct{ name, label string }

var rateComparisons = []rateComparison{
	{label: "send/receive on one machine",
		service: []named{{"BenchmarkReplicateExportImport", "butterd export | import"}},
		bare:    named{"BenchmarkReplicateBtrfsPipe", "btrfs send | btrfs receive"}, min: 0.9},
	// An import's read-only snapshot writes out the received data, which
	// the bare pipe leaves in memory: the same with a sync, shown.
	{label: "send/receive on one machine, data written out",
		service: []named{{"BenchmarkReplicateExportImport", "butterd export | import"}},
		bare:    named{"BenchmarkReplicateBtrfsPipeDurable", "btrfs send | btrfs receive && btrfs filesystem sync"}},
	// SSH's encryption on both ends shares the same cores: shown, no limit.
	{label: "send over SSH to this machine",
		service: []named{{"BenchmarkReplicateSendToLoopback", "butterd (SSH on loopback)"}},
		bare:    named{"BenchmarkReplicateBtrfsPipe", "btrfs send | btrfs receive"}},
	{label: "across hosts over SSH",
		service: []named{{"BenchmarkReplicateButterdNetns", "butterd daemons"}, {"BenchmarkReplicateSendToNetns", "butterd (in-process)"}},
		bare:    named{"BenchmarkReplicateOpenSSH", "btrfs send | ssh | btrfs receive"}, min: 0.9},
}

const (
	incrName  = "BenchmarkReplicateIncremental"
	incrLimit = 3.0 // % of the full stream's bytes
)

// syncComparisons are a sync after 1% of a volume's files changed against
// rsync -a of the same change (rounds of a fraction of a second or more:
// few of them).
var syncComparisons = []comparison{
	{label: "sync after 1% changed, small files", service: "BenchmarkSync1Percent/files", serviceLabel: "sync",
		bare: []string{"BenchmarkRsync1Percent/files"}, bareLabel: "rsync -a", limit: 0},
	{label: "sync after 1% changed, with a 64 MiB file", service: "BenchmarkSync1Percent/db", serviceLabel: "sync",
		bare: []string{"BenchmarkRsync1Percent/db"}, bareLabel: "rsync -a", limit: 0},
}

const (
	listPrefix = "BenchmarkPlugin/List"
	getName    = "BenchmarkPlugin/Get"
	bareHTTP   = "BenchmarkBareHTTPUnix"
	listLimit  = 50e6 // p99, ns
	getLimit   = 1e6  // p99, ns
	planName   = "BenchmarkPlan100k"
	planLimit  = 1e9 // mean, ns
	pauseName  = "BenchmarkConsistentPause"
	pauseLimit = 100e6 // median, ns
)

var (
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)
	problem   = regexp.MustCompile(`^(--- FAIL|FAIL|--- SKIP|panic:|fatal error:)`)
)

func main() {
	quiet := flag.Bool("q", false, "do not pass the benchmark output through")
	flag.Parse()
	var out io.Writer = os.Stdout
	if *quiet {
		out = io.Discard
	}
	runs, order, problems, err := parse(os.Stdin, out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: reading input: %v\n", err)
	}
	report(os.Stdout, merge(runs), order, problems)
}

// parse reads benchmark output, copying it to echo, and returns every run
// of each benchmark, the names in first-seen order and the lines that say
// something failed or was skipped.
func parse(r io.Reader, echo io.Writer) (map[string][]result, []string, []string, error) {
	runs := map[string][]result{}
	var order, problems []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(echo, line)
		if problem.MatchString(strings.TrimSpace(line)) {
			problems = append(problems, strings.TrimSpace(line))
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ops, _ := strconv.Atoi(m[2])
		res := result{ops: ops, metrics: map[string]float64{}}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				res.metrics[f[i+1]] = v
			}
		}
		if len(res.metrics) == 0 {
			continue
		}
		if _, seen := runs[m[1]]; !seen {
			order = append(order, m[1])
		}
		runs[m[1]] = append(runs[m[1]], res)
	}
	return runs, order, problems, sc.Err()
}

// merge makes one result per benchmark: with -count above 1, the median
// of each metric over the runs and the smallest number of operations.
func merge(runs map[string][]result) map[string]*result {
	out := map[string]*result{}
	for name, rs := range runs {
		m := &result{ops: rs[0].ops, metrics: map[string]float64{}}
		units := map[string][]float64{}
		for _, r := range rs {
			m.ops = min(m.ops, r.ops)
			for u, v := range r.metrics {
				units[u] = append(units[u], v)
			}
		}
		for u, vs := range units {
			sort.Float64s(vs)
			m.metrics[u] = vs[len(vs)/2]
		}
		out[name] = m
	}
	return out
}

func report(w io.Writer, res map[string]*result, order, problems []string) {
	used := map[string]bool{}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "butterd against the bare primitive, measured in the same run (medians; p99 in brackets)")
	compare(w, comparisons, res, used)

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	listName := ""
	for _, n := range order {
		if strings.HasPrefix(n, listPrefix) {
			listName = n
			break
		}
	}
	if l := res[listName]; l != nil {
		used[listName] = true
		vols, _ := strconv.Atoi(strings.TrimPrefix(listName, listPrefix))
		note := ""
		if vols > 0 {
			est := buttervolumePerVolume * float64(vols)
			note = fmt.Sprintf("buttervolume ~%s/volume = %s (%s butterd's median)", dur(buttervolumePerVolume), dur(est), ratio(est, l.median()))
		}
		fmt.Fprintf(tw, "  plugin List %d volumes\tmedian %s\tp99 %s\t(limit %s p99)\t%s%s\t%s\n", vols, dur(l.median()), dur(l.p99()),
			dur(listLimit), verdict(l.p99() <= listLimit), few(l), note)
	} else {
		fmt.Fprintf(tw, "  plugin List\t\t\t(limit %s p99)\tnot measured\t\n", dur(listLimit))
	}
	if g := res[getName]; g != nil {
		used[getName] = true
		note := "bare HTTP round trip over a unix socket: not measured"
		if h := res[bareHTTP]; h != nil {
			used[bareHTTP] = true
			note = fmt.Sprintf("bare HTTP round trip over a unix socket: median %s, p99 %s (overhead %s)%s",
				dur(h.median()), dur(h.p99()), signed(g.median()-h.median()), few(h))
		}
		fmt.Fprintf(tw, "  plugin Get\tmedian %s\tp99 %s\t(limit %s p99)\t%s%s\t%s\n", dur(g.median()), dur(g.p99()),
			dur(getLimit), verdict(g.p99() <= getLimit), few(g), note)
	} else {
		fmt.Fprintf(tw, "  plugin Get\t\t\t(limit %s p99)\tnot measured\t\n", dur(getLimit))
	}
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(w, "management over D-Bus against the service call and the btrfs command (medians; p99 in brackets)")
	compare(w, mgmtComparisons, res, used)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "replication against its primitive, same data, same run (MB/s of the volume's data)")
	replication(w, res, used)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "sync from another host against rsync -a of the same change (medians; p99 in brackets)")
	compare(w, syncComparisons, res, used)

	fmt.Fprintln(w)
	if p := res[pauseName]; p != nil {
		used[pauseName] = true
		fmt.Fprintf(w, "pause window of a consistent snapshot of one volume  median %s  p99 %s  (limit %s median)  %s%s  (round trip of the job: mean %s)\n",
			dur(p.median()), dur(p.p99()), dur(pauseLimit), verdict(p.median() <= pauseLimit), few(p), dur(p.metrics["ns/op"]))
	} else {
		fmt.Fprintf(w, "pause window of a consistent snapshot of one volume  (limit %s median)  not measured\n", dur(pauseLimit))
	}

	fmt.Fprintln(w)
	if p := res[planName]; p != nil {
		used[planName] = true
		mean := p.metrics["ns/op"]
		fmt.Fprintf(w, "purge plan of 100,000 snapshots  %s per plan  (limit %s)  %s  (%d plans)\n", dur(mean), dur(planLimit), verdict(mean <= planLimit), p.ops)
	} else {
		fmt.Fprintf(w, "purge plan of 100,000 snapshots  (limit %s)  not measured\n", dur(planLimit))
	}

	var others []string
	for _, n := range order {
		if !used[n] {
			others = append(others, n)
		}
	}
	if len(others) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "other benchmarks")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, n := range others {
			r := res[n]
			line := "mean " + dur(r.metrics["ns/op"])
			if _, ok := r.metrics["median-ns/op"]; ok {
				line += "\tmedian " + dur(r.median()) + "\tp99 " + dur(r.p99())
			}
			fmt.Fprintf(tw, "  %s\t%d ops\t%s\n", n, r.ops, line)
		}
		tw.Flush()
	}
	if len(problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "the run reported problems:")
		for _, p := range problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
}

// compare prints one table of comparisons, marking the benchmarks it
// shows in used.
func compare(w io.Writer, cs []comparison, res map[string]*result, used map[string]bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cs {
		s := res[c.service]
		var b *result
		bareName := ""
		for _, n := range c.bare {
			if b = res[n]; b != nil {
				bareName = n
				break
			}
		}
		used[c.service], used[bareName] = true, true
		serviceLabel := c.serviceLabel
		if serviceLabel == "" {
			serviceLabel = "service"
		}
		limit := "(limit +" + dur(c.limit) + ")"
		if c.limit == 0 {
			limit = "(limit: no slower, +0)"
		}
		if s == nil || b == nil {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\t%s\tnot measured\n", c.label, figure(serviceLabel, s), figure(c.bareLabel, b), limit)
			continue
		}
		over := s.median() - b.median()
		note := ""
		if c.note != nil {
			note = "\t" + c.note(s)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\toverhead %s (%s)\t%s\t%s%s%s\n", c.label, figure(serviceLabel, s), figure(c.bareLabel, b),
			signed(over), ratio(s.median(), b.median()), limit, verdict(over <= c.limit), few(s, b), note)
	}
	tw.Flush()
}

// replication prints the throughput ratios and the incremental stream's
// share of the full one, marking the benchmarks it shows in used.
func replication(w io.Writer, res map[string]*result, used map[string]bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range rateComparisons {
		var s *result
		service := c.service[0]
		for _, n := range c.service {
			if s = res[n.name]; s != nil {
				service = n
				break
			}
		}
		b := res[c.bare.name]
		used[service.name], used[c.bare.name] = true, true
		limit := fmt.Sprintf("(limit x%.1f)", c.min)
		if c.min == 0 {
			limit = "(no limit)"
		}
		if s == nil || b == nil {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\t%s\tnot measured\n", c.label, rate(service.label, s), rate(c.bare.label, b), limit)
			continue
		}
		r := s.metrics["MB/s"] / b.metrics["MB/s"]
		verdict := verdictMin(r >= c.min)
		if c.min == 0 {
			verdict = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tx%.2f\t%s\t%s%s\n", c.label, rate(service.label, s), rate(c.bare.label, b), r, limit,
			verdict, sends(s, b))
	}
	if in := res[incrName]; in != nil {
		used[incrName] = true
		pct := in.metrics["incr-%"]
		fmt.Fprintf(tw, "  incremental send after a 1%% change\t%s of %s in full: %.2f %%\t\t\t(limit %g %%)\t%s%s\n",
			bytesText(in.metrics["incr-bytes"]), bytesText(in.metrics["full-bytes"]), pct, incrLimit, verdict(pct < incrLimit), sends(in))
	} else {
		fmt.Fprintf(tw, "  incremental send after a 1%% change\t\t\t\t(limit %g %%)\tnot measured\n", incrLimit)
	}
	tw.Flush()
}

// rate is "label N MB/s", or "label -" when not measured.
func rate(label string, r *result) string {
	if r == nil {
		return label + " -"
	}
	return fmt.Sprintf("%s %.0f MB/s", label, r.metrics["MB/s"])
}

// sends says how many sends the smallest figure rests on.
func sends(rs ...*result) string {
	n := rs[0].ops
	for _, r := range rs {
		n = min(n, r.ops)
	}
	if n == 1 {
		return " (1 send)"
	}
	return fmt.Sprintf(" (%d sends)", n)
}

func verdictMin(ok bool) string {
	if ok {
		return "ok"
	}
	return "UNDER"
}

// bytesText writes a byte count in kB, MB or GB with three significant
// digits.
func bytesText(n float64) string {
	switch {
	case n < 1e6:
		return short(max(n/1e3, 1e-3), "kB")
	case n < 1e9:
		return short(n/1e6, "MB")
	}
	return short(n/1e9, "GB")
}

// figure is "label median (p99 x)", or "label -" when not measured.
func figure(label string, r *result) string {
	if r == nil {
		return label + " -"
	}
	return fmt.Sprintf("%s %s (p99 %s)", label, dur(r.median()), dur(r.p99()))
}

// few warns when a figure rests on fewer operations than the limits ask for.
func few(rs ...*result) string {
	n := 0
	for _, r := range rs {
		if n == 0 || r.ops < n {
			n = r.ops
		}
	}
	if n < minOps {
		return fmt.Sprintf(" (only %d ops)", n)
	}
	return ""
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "OVER"
}

func signed(ns float64) string {
	if ns < 0 {
		return "-" + dur(-ns)
	}
	return "+" + dur(ns)
}

// dur writes nanoseconds with a unit and at most three significant digits.
func dur(ns float64) string {
	switch {
	case ns < 1e3:
		return short(ns, "ns")
	case ns < 1e6:
		return short(ns/1e3, "µs")
	case ns < 1e9:
		return short(ns/1e6, "ms")
	}
	return short(ns/1e9, "s")
}

// short writes v (1 <= v < 1000 but for seconds) with up to three
// significant digits and no trailing zeros.
func short(v float64, unit string) string {
	decimals := 0
	switch {
	case v < 10:
		decimals = 2
	case v < 100:
		decimals = 1
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s + " " + unit
}

// ratio writes a/b as x2.3 or x270.
func ratio(a, b float64) string {
	if b <= 0 {
		return "x?"
	}
	if r := a / b; r < 10 {
		return fmt.Sprintf("x%.1f", r)
	}
	return fmt.Sprintf("x%.0f", a/b)
}
