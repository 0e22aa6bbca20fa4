package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchArgs keep keel bench small: a few samples per workload. Nothing
// asserts on timings.
var benchArgs = []string{"bench", "--n", "3", "--w2-workflows", "24", "--w2-starters", "4", "-q"}

func TestBenchTable(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bench.db")
	o := call(t, nil, append(benchArgs, "--db", db, "--workloads", "W1,W2")...)
	require.Equal(t, 0, o.code, o.String())
	require.Empty(t, o.stderr, "-q prints no progress")
	lines := strings.Split(o.stdout, "\n")
	require.True(t, strings.HasPrefix(lines[0], "keel bench: sqlite (journal_mode=wal synchronous=FULL), "), lines[0])
	require.Equal(t, "workload", strings.Fields(lines[2])[0])
	var rows []string
	for _, l := range lines[3:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			break
		}
		rows = append(rows, f[0])
		require.Len(t, f, 14, l)
	}
	require.Equal(t, []string{"F", "W1", "W2"}, rows, "the floor first, then the workloads asked for")
	require.Contains(t, o.stdout, "W1 p50 / F p50 = ")
	_, err := os.Stat(db)
	require.NoError(t, err)
}

func TestBenchJSON(t *testing.T) {
	t.Parallel()
	o := call(t, nil, append(benchArgs, "--json", "--workloads", "W1,W3,W4,A1,W2")...)
	require.Equal(t, 0, o.code, o.String())
	var rep struct {
		Store      string `json:"store"`
		Durability string `json:"durability"`
		Machine    struct {
			Cores int `json:"cores"`
		} `json:"machine"`
		Results []struct {
			Workload   string  `json:"workload"`
			N          int     `json:"n"`
			P50        float64 `json:"p50_ms"`
			WfPerSec   float64 `json:"workflows_per_s"`
			Tx         float64 `json:"tx_per_workflow"`
			Commits    float64 `json:"commits_per_workflow"`
			RoundTrips float64 `json:"round_trips_per_workflow"`
			CPU        float64 `json:"cpu_per_workflow_ms"`
			OverFloor  float64 `json:"p50_over_floor"`
		} `json:"results"`
		W1OverFloor float64 `json:"w1_p50_over_floor"`
	}
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &rep), o.stdout)
	require.Equal(t, "sqlite", rep.Store)
	require.Contains(t, rep.Durability, "synchronous=FULL")
	require.Positive(t, rep.Machine.Cores)
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Workload)
		require.Positive(t, r.Tx, r.Workload)
		require.GreaterOrEqual(t, r.RoundTrips, r.Tx, r.Workload)
		require.Positive(t, r.CPU, r.Workload)
		switch r.Workload {
		case "W2":
			require.Equal(t, 24, r.N)
			require.Positive(t, r.WfPerSec)
		default:
			require.Equal(t, 3, r.N, r.Workload)
			require.Positive(t, r.P50, r.Workload)
		}
		if r.Workload == "W1" {
			// As today: start, first task, one commit per activity.
			require.LessOrEqual(t, r.Tx, 5.0)
			require.Equal(t, r.Tx, r.Commits, "sequential: a commit per transaction")
			require.InDelta(t, rep.W1OverFloor, r.OverFloor, 1e-9)
		}
	}
	require.Equal(t, []string{"F", "W1", "W3", "W4", "A1", "W2"}, names)
	require.Positive(t, rep.W1OverFloor)
}

func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	requireUsageError(t, call(t, nil, "bench", "--workloads", "W1,W7"), `unknown workload: "W7"`)
	requireUsageError(t, call(t, nil, "bench", "--w2-starters", "0"), "must be positive")
	existing := filepath.Join(t.TempDir(), "app.db")
	require.NoError(t, os.WriteFile(existing, []byte("data"), 0o600))
	requireUsageError(t, call(t, nil, "bench", "--db", existing), "already exists")
	b, err := os.ReadFile(existing)
	require.NoError(t, err)
	require.Equal(t, "data", string(b))
}
