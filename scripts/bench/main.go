// Command bench is `make bench`: it measures Ebb against baselines run on
// the same machine in the same run, prints one table of ratios and writes
// it as JSON under bench/results.
//
//	go run ./scripts/bench [-scenario diff,diff-large,e2e,memory,transform,scaleout,latency,isolation,ratelimit,second,crash,pgtable] [-rows N] [-out bench/results]
//	go run ./scripts/bench compare A.json B.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

// scenario is one command of the benchmark: it runs at size n (rows) and
// returns its table rows and notes.
type scenario struct {
	name string
	// size is the default size; -rows overrides it.
	size int64
	run  func(ctx context.Context, o options, n int64) ([]Row, []string, error)
	// target is shown when the scenario fails before measuring.
	target string
	// factor, when set, runs the scenario at factor times its size (or
	// -rows), so that -rows scales it with the others.
	factor int64
}

// options are the flags scenarios read.
type options struct {
	ebbBin    string // path to the ebb binary, for scenarios that run it as processes
	memFactor int64  // memory: the large size is memFactor times the small one
}

var scenarios = []scenario{
	{name: "diff", size: 1_000_000, run: wrap(benchDiff), target: "<= 1.3x floor, < 1x EXCEPT/JOIN"},
	// diff-large is the diff scenario at 10 times N: 10M rows by default,
	// the size the warehouse engine is for.
	{name: "diff-large", size: 1_000_000, factor: 10, run: wrap(benchDiff), target: "<= 1.3x floor, < 1x EXCEPT/JOIN"},
	{name: "e2e", size: 1_000_000, run: wrap(benchE2E), target: ">= 100k rows/s and >= 0.5x sink"},
	{name: "memory", size: 1_000_000, run: benchMemory, target: "< 300 MB, large <= 1.2x small"},
	{name: "transform", size: 2_000_000, run: wrap(benchTransform), target: ">= 500k records/s/core"},
	{name: "scaleout", size: 100_000, run: benchScaleout, target: "near-linear, then respects the limit"},
	{name: "latency", size: 1_000_000, run: wrap(benchLatency), target: "<= 1.5x one key+hash read"},
	{name: "isolation", size: 1_000_000, run: wrap(benchIsolation), target: "<= 1.5x alone"},
	{name: "ratelimit", size: 0, run: wrap(benchRateLimit), target: ">= 0.9x the limit, < 5% 429"},
	{name: "second", size: 1_000_000, run: wrap(benchSecond), target: "<= 1.3x key+hash floor, <= 0.5x COPY re-copy"},
	{name: "crash", size: 200_000, run: benchCrash, target: "moves within 15 s of a kill -9 restart"},
	{name: "pgtable", size: 1_000_000, run: wrap(benchPGTable), target: ">= 0.35x the COPY pipe"},
}

func wrap(fn func(context.Context, int64) ([]Row, []string, error)) func(context.Context, options, int64) ([]Row, []string, error) {
	return func(ctx context.Context, _ options, n int64) ([]Row, []string, error) { return fn(ctx, n) }
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: bench compare A.json B.json")
			os.Exit(2)
		}
		a, err := readReport(os.Args[2])
		exitOn(err)
		b, err := readReport(os.Args[3])
		exitOn(err)
		compare(os.Stdout, a, b)
		return
	}
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	list := flag.String("scenario", strings.Join(names, ","), "comma-separated scenarios to run: "+strings.Join(names, ", "))
	rows := flag.Int64("rows", 0, "size N of every scenario (0: each scenario's default)")
	out := flag.String("out", "bench/results", "directory for the JSON results")
	profile := flag.String("cpuprofile", "", "directory for one CPU profile per scenario (<scenario>.pprof) and one of its allocations (<scenario>.allocs.pprof)")
	ebbBin := flag.String("ebb", "", "ebb binary for the scenarios that run it as processes (default: build it)")
	memFactor := flag.Int64("memory-factor", 10, "memory: the large size is this many times N")
	flag.Parse()

	selected := map[string]bool{}
	for _, n := range strings.Split(*list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !contains(names, n) {
			exitOn(fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(names, ", ")))
		}
		selected[n] = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o := options{ebbBin: *ebbBin, memFactor: *memFactor}
	if o.ebbBin == "" && (selected["memory"] || selected["scaleout"] || selected["crash"]) {
		bin, cleanup, err := buildEbb(ctx)
		exitOn(err)
		defer cleanup()
		o.ebbBin = bin
	}

	rep := Report{Commit: gitCommit(), Started: time.Now(), GoMaxProcs: runtime.GOMAXPROCS(0)}
	for _, s := range scenarios {
		if !selected[s.name] || ctx.Err() != nil {
			continue
		}
		n := s.size
		if *rows > 0 {
			n = *rows
		}
		if s.factor > 0 {
			n *= s.factor
		}
		fmt.Fprintf(os.Stderr, "bench: %s at %s rows...\n", s.name, thousands(float64(n)))
		start := time.Now()
		stopProfile := startProfile(*profile, s.name)
		r, notes, err := s.run(ctx, o, n)
		stopProfile()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", s.name, err)
			r = append(r, notMeasured(s.name, "(scenario failed)", n, s.target, err.Error()))
		}
		fmt.Fprintf(os.Stderr, "bench: %s took %s\n", s.name, time.Since(start).Round(time.Second))
		rep.Rows = append(rep.Rows, r...)
		rep.Notes = append(rep.Notes, notes...)
	}
	rep.Duration = time.Since(rep.Started)

	fmt.Println()
	printTable(os.Stdout, rep.Rows)
	if len(rep.Notes) > 0 {
		fmt.Println()
		for _, n := range rep.Notes {
			fmt.Println("- " + n)
		}
	}
	path, err := writeReport(*out, rep)
	exitOn(err)
	fmt.Printf("\n%d cores (GOMAXPROCS), %s in all; results in %s\n", rep.GoMaxProcs, rep.Duration.Round(time.Second), path)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// startProfile writes a CPU profile of one scenario into dir, if set, and
// then the allocations since the start (<scenario>.allocs.pprof).
func startProfile(dir, name string) func() {
	if dir == "" {
		return func() {}
	}
	exitOn(os.MkdirAll(dir, 0o755))
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	exitOn(err)
	exitOn(pprof.StartCPUProfile(f))
	// The allocations too: the garbage collector is a large part of a
	// first load's CPU, and this says who makes its work.
	runtime.MemProfileRate = 64 << 10
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		heap, err := os.Create(filepath.Join(dir, name+".allocs.pprof"))
		exitOn(err)
		exitOn(pprof.Lookup("allocs").WriteTo(heap, 0))
		heap.Close()
	}
}

// buildEbb builds the ebb binary into a temp dir.
func buildEbb(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "ebb-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "ebb")
	fmt.Fprintln(os.Stderr, "bench: building ebb...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ebb-etl/ebb/services/ebb")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building ebb: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}
