package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrUnknownWorkload is returned for a workload name Run does not know.
var ErrUnknownWorkload = errors.New("bench: unknown workload")

// Workloads Run knows, in the order it runs them. S is not in
// DefaultWorkloads: at its default size it takes minutes.
var (
	AllWorkloads     = []string{"F", "W1", "W3", "W4", "A1", "W2", "S"}
	DefaultWorkloads = []string{"F", "W1", "W3", "W4", "A1", "W2"}
)

// Options configure Run. The zero value runs the default workloads on a
// new SQLite file in a temporary directory.
type Options struct {
	// DB is a SQLite file to create (it must not exist), a postgres:// URL
	// (the run uses a new schema, dropped at the end), or "" for a
	// temporary SQLite file.
	DB string
	// Workloads to run, by name (case-insensitive): F, W1, W2, W3, W4,
	// A1, S. Optional; default DefaultWorkloads. F is always measured.
	Workloads []string
	// N is the number of samples of each latency workload. Optional;
	// defaults: F 500, W1 500, W3 300, W4 50, A1 20 agent runs.
	N int
	// W2Workflows and W2Starters size W2. Optional; defaults 2,000 and 64.
	W2Workflows, W2Starters int
	// Sleep sizes S. Optional; see SleepOptions.
	Sleep SleepOptions
	// Progress, when set, receives a line as each workload ends.
	Progress io.Writer
}

// Machine describes where a report was measured.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu,omitempty"`
	OS        string `json:"os"`
	GoVersion string `json:"go_version"`
}

// Report is the outcome of Run.
type Report struct {
	// Store is StoreSQLite or StorePostgres.
	Store string `json:"store"`
	// Durability is what the database says its durability settings are.
	Durability string `json:"durability"`
	// Autovacuum is PostgreSQL's autovacuum setting (empty on SQLite).
	Autovacuum string `json:"autovacuum,omitempty"`
	// PoolSize is the PostgreSQL pool's size: the most transactions the
	// run has in flight at once (0 on SQLite).
	PoolSize int       `json:"pool_size,omitempty"`
	Machine  Machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Results  []Result  `json:"results"`
	// W1OverFloor is W1's p50 divided by F's p50 (0 without W1).
	W1OverFloor float64 `json:"w1_p50_over_floor,omitempty"`
}

// Result returns the result of a workload, or false.
func (r *Report) Result(workload string) (Result, bool) {
	for _, res := range r.Results {
		if res.Workload == workload {
			return res, true
		}
	}
	return Result{}, false
}

// ParseWorkloads splits a comma-separated list of workload names, checks
// them and returns them in run order, with F first.
func ParseWorkloads(list string) ([]string, error) {
	want := map[string]bool{"F": true}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.ToUpper(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if !slices.Contains(AllWorkloads, name) {
			return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownWorkload, name, strings.Join(AllWorkloads, ", "))
		}
		want[name] = true
	}
	var out []string
	for _, name := range AllWorkloads {
		if want[name] {
			out = append(out, name)
		}
	}
	return out, nil
}

// Run opens the database of opts.DB and runs the workloads on it, one
// after the other, in a fixed order: F's samples are taken half before
// the other workloads and half after them, so that the floor and the
// workloads see the same disk and the same neighbours.
func Run(ctx context.Context, opts Options) (*Report, error) {
	names := opts.Workloads
	if len(names) == 0 {
		names = DefaultWorkloads
	}
	names, err := ParseWorkloads(strings.Join(names, ","))
	if err != nil {
		return nil, err
	}
	n := func(def int) int {
		if opts.N > 0 {
			return opts.N
		}
		return def
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	env, err := Open(ctx, opts.DB, nil)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	rep := &Report{Store: env.Kind, Durability: env.Durability, Autovacuum: env.Autovacuum, PoolSize: env.PoolSize, Machine: machine(), Started: time.Now().UTC()}
	batch := fmt.Sprint(time.Now().UnixNano())
	done := func(r Result) {
		rep.Results = append(rep.Results, r)
		fmt.Fprintf(progress, "%s done in %.1fs\n", r.Workload, r.Elapsed)
	}

	floorN := n(500)
	floor1, err := env.Floor(ctx, (floorN+1)/2)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		var r Result
		switch name {
		case "F":
			continue
		case "W1":
			r, err = env.W1(ctx, n(500))
		case "W2":
			r, err = env.W2(ctx, orDefault(opts.W2Workflows, 2000), orDefault(opts.W2Starters, 64), batch)
		case "W3":
			r, err = env.W3(ctx, n(300), batch)
		case "W4":
			r, err = env.W4(ctx, n(50))
		case "A1":
			r, err = env.A1(ctx, n(20), batch)
		case "S":
			r, err = runSleepers(ctx, opts)
		}
		if err != nil {
			return nil, err
		}
		done(r)
	}
	floor2, err := env.Floor(ctx, floorN/2)
	if err != nil {
		return nil, err
	}
	floor := mergeFloor(floor1, floor2)
	rep.Results = append([]Result{floor}, rep.Results...)
	for i := range rep.Results {
		r := &rep.Results[i]
		if floor.P50 > 0 && r.Workload != "F" && r.Workload != "W2" && r.Workload != "S" && r.P50 > 0 {
			r.OverFloor = r.P50 / floor.P50
		}
	}
	if w1, ok := rep.Result("W1"); ok {
		rep.W1OverFloor = w1.OverFloor
	}
	return rep, nil
}

// runSleepers runs S on an Env of its own (a new database: a new file,
// or a new schema), by default with the engine's default cache size, so
// that its memory figures are those of a default engine.
func runSleepers(ctx context.Context, opts Options) (Result, error) {
	db := opts.DB
	if db != "" && !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
		db += ".sleepers"
	}
	so := opts.Sleep
	cache := orDefault(so.CacheSize, 1000)
	env, err := Open(ctx, db, &EnvOptions{CacheSize: cache})
	if err != nil {
		return Result{}, err
	}
	defer env.Close()
	if so.Progress == nil {
		so.Progress = opts.Progress
	}
	r, err := env.Sleepers(ctx, &so)
	if err == nil {
		r.Extra["cache_size"] = float64(cache)
	}
	return r, err
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// mergeFloor combines the two halves of F.
func mergeFloor(a, b Result) Result {
	out := a
	out.Samples = append(append([]time.Duration(nil), a.Samples...), b.Samples...)
	out.N = len(out.Samples)
	out.Workflows = a.Workflows + b.Workflows
	w := func(x, y float64) float64 {
		if out.Workflows == 0 {
			return 0
		}
		return (x*float64(a.Workflows) + y*float64(b.Workflows)) / float64(out.Workflows)
	}
	out.TxPerWorkflow = w(a.TxPerWorkflow, b.TxPerWorkflow)
	out.CommitsPerWorkflow = w(a.CommitsPerWorkflow, b.CommitsPerWorkflow)
	out.RoundTripsPerWorkflow = w(a.RoundTripsPerWorkflow, b.RoundTripsPerWorkflow)
	out.StatementsPerWorkflow = w(a.StatementsPerWorkflow, b.StatementsPerWorkflow)
	out.CPUPerWorkflow = w(a.CPUPerWorkflow, b.CPUPerWorkflow)
	out.DBCPUPerWorkflow = w(a.DBCPUPerWorkflow, b.DBCPUPerWorkflow)
	out.Elapsed = a.Elapsed + b.Elapsed
	s := append([]time.Duration(nil), out.Samples...)
	out.P50, out.P95, out.P99 = ms(Percentile(s, 0.50)), ms(Percentile(s, 0.95)), ms(Percentile(s, 0.99))
	return out
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as an aligned text table, with a line of
// context above it and the workloads' descriptions below.
func (r *Report) WriteTable(w io.Writer) error {
	settings := r.Durability
	if r.Autovacuum != "" {
		settings += " autovacuum=" + r.Autovacuum
	}
	if r.PoolSize > 0 {
		settings += fmt.Sprintf(", pool %d", r.PoolSize)
	}
	fmt.Fprintf(w, "keel bench: %s (%s), %d cores, %s, %s\n\n", r.Store, settings, r.Machine.Cores, r.Machine.CPU, r.Machine.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tn\tp50 ms\tp95 ms\tp99 ms\twf/s\tact/s\ttx/wf\tcommits/wf\trt/wf\tstmt/wf\tcpu ms/wf\tdb cpu ms/wf\tp50/F\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", res.Workload, res.N,
			num(res.P50, 3), num(res.P95, 3), num(res.P99, 3),
			num(res.WorkflowsPerSecond, 0), num(res.ActivitiesPerSecond, 0),
			num(res.TxPerWorkflow, 2), num(res.CommitsPerWorkflow, 2), num(res.RoundTripsPerWorkflow, 1),
			num(res.StatementsPerWorkflow, 1),
			num(res.CPUPerWorkflow, 3), num(res.DBCPUPerWorkflow, 3), num(res.OverFloor, 1))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, res := range r.Results {
		fmt.Fprintf(w, "%-3s %s\n", res.Workload, res.What)
		if len(res.Extra) > 0 {
			keys := make([]string, 0, len(res.Extra))
			for k := range res.Extra {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s=%s", k, num(res.Extra[k], 1)))
			}
			fmt.Fprintf(w, "    %s\n", strings.Join(parts, " "))
		}
	}
	if r.W1OverFloor > 0 {
		fmt.Fprintf(w, "\nW1 p50 / F p50 = %.1f\n", r.W1OverFloor)
	}
	return nil
}

// num formats v with prec decimals, or "-" for zero.
func num(v float64, prec int) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}
