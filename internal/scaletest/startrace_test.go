package scaletest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

const (
	startProcs    = 2
	startRoutines = 25 // per process
)

// startResult is what one start of a raced workflow ID returned.
type startResult struct {
	Round   int    `json:"round"`
	RunID   string `json:"run_id"`
	Created bool   `json:"created"`
	Err     string `json:"err,omitempty"`
}

func startRaceID(round int) string { return fmt.Sprintf("same-id-%d", round) }

// In each round, 25 goroutines in each of two processes start the same
// workflow ID at once (the processes are released together by the parent).
// No worker runs, so the run that wins stays running: every start must
// return it, and only one of them may have created it.
func TestSameIDStartRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.ctx
	e, err := durable.New(b.st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	p := newPipeline(nil)
	e.MustRegister(p.defs...)

	procs := make([]*child, startProcs)
	for i := range procs {
		procs[i] = startChild(t, fmt.Sprintf("starter-%d", i), childEnv{mode: "starter", schema: b.schema})
	}
	for round := range startRaceRounds {
		for _, c := range procs {
			c.expect(t, "ready", time.Minute)
		}
		for _, c := range procs {
			c.send(t, "go")
		}
		var results []startResult
		for _, c := range procs {
			for range startRoutines {
				select {
				case line, ok := <-c.lines:
					require.True(t, ok, "%s exited; stderr:\n%s", c.name, c.stderrTail(4096))
					var r startResult
					require.NoError(t, json.Unmarshal([]byte(line), &r), line)
					require.Equal(t, round, r.Round)
					results = append(results, r)
				case <-time.After(time.Minute):
					t.Fatalf("%s: no result in round %d", c.name, round)
				}
			}
		}

		id := startRaceID(round)
		runs, _, err := e.ListRuns(ctx, &durable.ListOptions{WorkflowID: id})
		require.NoError(t, err)
		require.Len(t, runs, 1, "workflow %s has one run", id)
		require.Equal(t, durable.StatusRunning, runs[0].Status)
		created := 0
		for _, r := range results {
			require.Empty(t, r.Err)
			require.Equal(t, runs[0].RunID, r.RunID, "every start of %s returned its one run", id)
			if r.Created {
				created++
			}
		}
		require.Len(t, results, startProcs*startRoutines)
		require.Equal(t, 1, created, "one start of %s created the run", id)
	}
	for _, c := range procs {
		require.NoError(t, c.stop(t, 10*time.Second), c.name)
	}
}

// starterMain is a starter process: each round, when the parent says go,
// startRoutines goroutines start the round's workflow ID at once and print
// what they got.
func starterMain(ctx context.Context) error {
	parent := newParentIO()
	_, st, closeAll, err := childStore(ctx, 6, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	e, err := durable.New(st, &durable.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	p := newPipeline(nil)
	if err := e.Register(p.defs...); err != nil {
		return err
	}
	// Warm the pool so that the first round races on open connections.
	if _, _, err := e.ListRuns(ctx, &durable.ListOptions{WorkflowID: "warm-up"}); err != nil {
		return err
	}

	for round := range startRaceRounds {
		parent.send("ready")
		if err := parent.expect(ctx, "go"); err != nil {
			return err
		}
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for range startRoutines {
			wg.Go(func() {
				<-gate
				r := startResult{Round: round}
				h, err := p.wf.Start(ctx, e, round, &durable.StartOptions{ID: startRaceID(round)})
				if err != nil {
					r.Err = strings.ReplaceAll(err.Error(), "\n", " ")
				} else {
					r.RunID, r.Created = h.RunID(), h.Created()
				}
				b, _ := json.Marshal(r)
				parent.send("%s", b)
			})
		}
		close(gate)
		wg.Wait()
	}
	return parent.waitClosed(ctx)
}
