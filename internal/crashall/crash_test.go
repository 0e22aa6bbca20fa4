//go:build failpoints

package crashall_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/internal/failpoint"
	"github.com/keelhq/keel/internal/reliability"
	"github.com/keelhq/keel/internal/testdb"
)

// A process of a case: the worker runs the workload, the reviewer decides
// the approval.
const (
	roleWorker   = "worker"
	roleReviewer = "reviewer"
)

// proc is a finished child process.
type proc struct {
	err    error
	output string
	report report
}

func (p proc) killed() bool {
	var ee *exec.ExitError
	return errors.As(p.err, &ee) && ee.ProcessState.String() == "signal: killed"
}

// killedAt returns the failpoint the process said it killed itself at.
var killLine = regexp.MustCompile(`failpoint: kill at (\S+) \(hit (\d+)\)`)

func (p proc) killedAt() string {
	if m := killLine.FindStringSubmatch(p.output); m != nil {
		return m[1]
	}
	return ""
}

// The databases a workload runs on.
const (
	onSQLite   = "sqlite"
	onPostgres = "postgres"
)

// workspace is one workload's database and fake Stripe.
type workspace struct {
	kind string
	dir  string
	db   string        // the SQLite file, or the URL of the test's Postgres schema
	pool *pgxpool.Pool // Postgres only
	fake *stripefake.Server
	seq  atomic.Int64
}

func newWorkspace(t *testing.T, kind string) *workspace {
	t.Helper()
	fake := stripefake.NewServer()
	t.Cleanup(fake.Close)
	fake.AddCustomer(customer, "pm_card_visa")
	w := &workspace{kind: kind, dir: t.TempDir(), fake: fake}
	if kind == onPostgres {
		w.pool, w.db = testdb.PostgresWithURL(t)
	} else {
		w.db = filepath.Join(w.dir, "keel.db")
		createDatabase(t, w.db)
	}
	return w
}

// run runs a child process of the test binary in role, with its clock gen
// generations ahead, and extra environment variables.
func (w *workspace) run(ctx context.Context, role string, gen int, extra ...string) proc {
	out := filepath.Join(w.dir, fmt.Sprintf("%s-%d.json", role, w.seq.Add(1)))
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEEL_FAILPOINTS") && !strings.HasPrefix(kv, "KEEL_CRASHALL_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, envRole+"="+role, envDB+"="+w.db, envGen+"="+strconv.Itoa(gen), envOut+"="+out)
	if w.fake != nil {
		cmd.Env = append(cmd.Env, envStripe+"="+w.fake.URL)
	}
	cmd.Env = append(cmd.Env, extra...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	p := proc{err: cmd.Run()}
	p.output = buf.String()
	if p.err == nil {
		b, err := os.ReadFile(out)
		if err == nil {
			err = json.Unmarshal(b, &p.report)
		}
		if err != nil {
			p.err = fmt.Errorf("read report: %w", err)
		}
	}
	return p
}

// target is a failpoint of one process role, at one hit.
type target struct {
	role string
	name string
	hit  int64
}

// outcome is what one workload went through.
type outcome struct {
	kills       int // processes killed by their failpoint
	generations int // worker processes run
	processes   int // worker and reviewer processes run
}

// runWorkload runs the workload to its end in w: a worker and a reviewer
// process, the process of tgt's role (if any) with tgt's failpoint set to
// kill, and whichever is killed replaced by a fresh process without
// failpoints. logs, when set, makes the first processes log the names of
// the failpoints they cross.
func runWorkload(t *testing.T, w *workspace, tgt *target, logs map[string]string) (outcome, map[string]proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*childTimeout)
	defer cancel()
	first := func(role string) []string {
		var env []string
		if tgt != nil && tgt.role == role {
			env = append(env, failpoint.EnvSpec+"="+tgt.name+"=kill@"+strconv.FormatInt(tgt.hit, 10))
		}
		if logs != nil {
			env = append(env, failpoint.EnvLog+"="+logs[role])
		}
		return env
	}

	var mu sync.Mutex
	var out outcome
	var failures []string
	last := map[string]proc{}
	// check accepts a process's end: a success, or its first process killed
	// at the target's failpoint. It reports whether to run another.
	check := func(role string, attempt int, p proc) bool {
		mu.Lock()
		defer mu.Unlock()
		last[role] = p
		out.processes++
		switch {
		case p.err == nil:
			return false
		case attempt == 0 && tgt != nil && tgt.role == role && p.killed():
			if at := p.killedAt(); at != tgt.name {
				failures = append(failures, fmt.Sprintf("the %s died at %q, not at its failpoint %s:\n%s", role, at, tgt.name, p.output))
				return false
			}
			out.kills++
			return true
		default:
			failures = append(failures, fmt.Sprintf("%s process %d: %v\n%s", role, attempt, p.err, p.output))
			cancel() // the other process would wait in vain
			return false
		}
	}

	reviewerDone := make(chan struct{})
	go func() {
		defer close(reviewerDone)
		for attempt := 0; ; attempt++ {
			var env []string
			if attempt == 0 {
				env = first(roleReviewer)
			}
			if !check(roleReviewer, attempt, w.run(ctx, roleReviewer, 0, env...)) {
				return
			}
		}
	}()
	for gen := 0; ; gen++ {
		var env []string
		if gen == 0 {
			env = first(roleWorker)
		}
		p := w.run(ctx, roleWorker, gen, env...)
		mu.Lock()
		out.generations++
		mu.Unlock()
		if !check(roleWorker, gen, p) {
			break
		}
	}
	<-reviewerDone
	require.Empty(t, failures)
	return out, last
}

// baseline is the outcome of a workload without failpoints.
type baseline struct {
	state state
	// names lists each role's failpoints in the order first crossed;
	// hits counts how often each was crossed.
	names map[string][]string
	hits  map[string]map[string]int64
}

func runBaseline(t *testing.T, kind string) baseline {
	t.Helper()
	w := newWorkspace(t, kind)
	logs := map[string]string{
		roleWorker:   filepath.Join(w.dir, "worker-failpoints.log"),
		roleReviewer: filepath.Join(w.dir, "reviewer-failpoints.log"),
	}
	_, procs := runWorkload(t, w, nil, logs)
	s, f := collect(t, w)
	checkOnce(t, s, f)
	b := baseline{state: s, names: map[string][]string{}, hits: map[string]map[string]int64{}}
	for role, path := range logs {
		b.names[role] = readNames(t, path)
		b.hits[role] = procs[role].report.Hits
		require.NotEmpty(t, b.names[role], "the %s crossed no failpoint", role)
	}
	return b
}

func readNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	seen := map[string]bool{}
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n := sc.Text(); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	require.NoError(t, sc.Err())
	return names
}

// checkOnce checks what must hold of any finished workload: every side
// effect once, the ledger's charges those of the fake Stripe, one vote.
func checkOnce(t *testing.T, s state, f facts) {
	t.Helper()
	require.Empty(t, duplicates(s.Effects), "side effects recorded twice")
	require.Equal(t, f.ChargeIDs, f.LedgerStripeIDs, "the ledger and Stripe disagree")
	require.Len(t, s.Charges, 1, "one charge")
	require.Len(t, s.Votes, 1, "one vote")
	require.Empty(t, checkWellFormed(f))
}

// pickHit chooses which hit of a failpoint a seed kills at, among the
// hits the baseline counted: each in turn when there are no more hits than
// seeds, else the first for seed 0 and a random one for the others.
func pickHit(name string, seed, seeds int, hits int64) int64 {
	if hits <= int64(seeds) {
		return 1 + int64(seed)%hits
	}
	if seed == 0 {
		return 1
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(seed)))
	return 1 + r.Int64N(hits)
}

func TestCrashAtEveryBoundary(t *testing.T) {
	t.Parallel()
	t.Run(onSQLite, func(t *testing.T) {
		t.Parallel()
		crashAtEveryBoundary(t, onSQLite, seedsPerFailpoint(3))
	})
	t.Run(onPostgres, func(t *testing.T) {
		t.Parallel()
		crashAtEveryBoundary(t, onPostgres, seedsPerFailpoint(1))
	})
}

// seedsEnv overrides the number of seeds per failpoint of either profile.
const seedsEnv = "KEEL_CRASHALL_SEEDS"

// fullSeeds is the full profile's seeds per failpoint on each store: with
// the 43 to 45 failpoints the workload crosses, about 5,000 kills per
// store.
const fullSeeds = 115

// seedsPerFailpoint returns the seeds per failpoint: ci under the CI
// profile, fullSeeds under the full one, or what seedsEnv says.
func seedsPerFailpoint(ci int) int {
	if n, err := strconv.Atoi(os.Getenv(seedsEnv)); err == nil && n > 0 {
		return n
	}
	return reliability.Pick(ci, fullSeeds)
}

func crashAtEveryBoundary(t *testing.T, kind string, seeds int) {
	began := time.Now()
	base := runBaseline(t, kind)
	again := runBaseline(t, kind)
	require.Equal(t, base.state, again.state, "two runs without a crash differ: the comparison would not be sound")
	for _, role := range []string{roleWorker, roleReviewer} {
		t.Logf("%s failpoints (%d): %s", role, len(base.names[role]), strings.Join(base.names[role], " "))
	}

	var (
		mu                      sync.Mutex
		kills, cases, resumed   int
		reexecutions, processes int
		missed                  []string
	)
	t.Run("kill", func(t *testing.T) {
		for _, role := range []string{roleWorker, roleReviewer} {
			for _, name := range base.names[role] {
				for seed := range seeds {
					hits := max(base.hits[role][name], 1)
					t.Run(fmt.Sprintf("%s/%s/seed%d", role, name, seed), func(t *testing.T) {
						t.Parallel()
						hit := pickHit(name, seed, seeds, hits)
						// A failpoint crossed by polling may be crossed fewer
						// times than in the baseline: halve the hit until
						// the kill happens.
						for {
							w := newWorkspace(t, kind)
							out, _ := runWorkload(t, w, &target{role: role, name: name, hit: hit}, nil)
							s, f := collect(t, w)
							require.Equal(t, base.state, s, "the final state differs from the baseline's (kill at %s hit %d)", name, hit)
							checkOnce(t, s, f)
							mu.Lock()
							cases++
							kills += out.kills
							resumed += out.generations - 1
							processes += out.processes
							reexecutions += f.Reexecutions
							mu.Unlock()
							if out.kills > 0 || hit == 1 {
								if out.kills == 0 {
									mu.Lock()
									missed = append(missed, fmt.Sprintf("%s:%s", role, name))
									mu.Unlock()
								}
								return
							}
							hit = (hit + 1) / 2
						}
					})
				}
			}
		}
	})
	sort.Strings(missed)
	t.Logf("crash at every boundary on %s: %d failpoints × %d seeds, %d workloads (%d processes), %d kills, %d resumed worker processes, "+
		"%d activity re-executions, 0 lost, 0 duplicated, 0 diverged; never reached: %v; %s",
		kind, len(base.names[roleWorker])+len(base.names[roleReviewer]), seeds, cases, processes, kills, resumed,
		reexecutions, missed, time.Since(began).Round(time.Second))
}
