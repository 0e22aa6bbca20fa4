package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/demo"
)

func init() { commands = append(commands, replayCmd) }

// knownDefinitions returns every workflow and activity built into keel: the
// code that `keel replay` checks histories against, and that `keel worker`
// and `keel run` execute.
func knownDefinitions() []durable.Definition { return knownDefinitionsTo(io.Discard) }

// knownDefinitionsTo is knownDefinitions whose activities narrate what they
// do to out, if they narrate at all.
func knownDefinitionsTo(out io.Writer) []durable.Definition {
	_, defs := demo.Definitions(out)
	return defs
}

// Exit codes of keel replay.
const (
	replayOK       = 0 // every history replayed
	replayFailed   = 1 // a history did not replay: non-determinism, unknown workflow, panic
	replayBadUsage = 2 // bad arguments, or a history or database that could not be read
)

func replayCmd() *cobra.Command {
	var (
		running bool
		db      string
	)
	cmd := &cobra.Command{
		Use:   "replay FILE... | replay --running [--db DSN]",
		Short: "Check that this binary's workflow code replays recorded histories (run it before a deploy)",
		Long: `Replay workflow histories against the workflow code built into this binary,
without running any activity, and report every history the code no longer
reproduces: the event, and the command the history recorded next to the one
the code issued.

Histories come from files written by ExportHistory (FILE...), or with
--running from every running run in a database.

Exit status: 0 when every history replays, 1 when any does not (a
non-deterministic change, an unknown workflow type, a panic), 2 on bad
arguments or when a history or the database cannot be read (and none failed).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			code := runReplay(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, running, db)
			if code != replayOK {
				os.Exit(code)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&running, "running", false, "replay every running run in the database instead of files")
	cmd.Flags().StringVar(&db, "db", envOr("KEEL_DB", "keel.db"), "with --running: SQLite file or postgres:// URL (env KEEL_DB)")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		fmt.Fprintf(c.ErrOrStderr(), "keel replay: %v\n\n%s", err, c.UsageString())
		os.Exit(replayBadUsage)
		return err
	})
	return cmd
}

// runReplay does the work of keel replay and returns its exit status.
func runReplay(ctx context.Context, stdout, stderr io.Writer, files []string, running bool, db string) int {
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "keel replay: %s\nUsage: keel replay FILE... | keel replay --running [--db DSN]\n", msg)
		return replayBadUsage
	}
	switch {
	case running && len(files) > 0:
		return usage("give history files or --running, not both")
	case !running && len(files) == 0:
		return usage("no history files given (or use --running)")
	}
	r, err := durable.NewReplayer(knownDefinitions()...)
	if err != nil {
		fmt.Fprintf(stderr, "keel replay: %v\n", err)
		return replayBadUsage
	}
	rep := &replayReport{out: stdout}
	if running {
		if code := replayRunning(ctx, r, rep, stderr, db); code != replayOK {
			return code
		}
	} else {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err == nil {
				err = r.ReplayJSON(data)
			}
			rep.add(f, err)
		}
	}
	return rep.finish()
}

// replayRunning replays the running runs of the database db.
func replayRunning(ctx context.Context, r *durable.Replayer, rep *replayReport, stderr io.Writer, db string) int {
	if !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
		if _, err := os.Stat(db); err != nil {
			fmt.Fprintf(stderr, "keel replay: database %s: %v\n", db, err)
			return replayBadUsage
		}
	}
	st, closeStore, err := openStore(ctx, db)
	if err != nil {
		fmt.Fprintf(stderr, "keel replay: %v\n", err)
		return replayBadUsage
	}
	defer closeStore()
	e, err := newEngine(st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(stderr, "keel replay: %v\n", err)
		return replayBadUsage
	}
	results, err := r.ReplayRunning(ctx, e)
	for _, res := range results {
		rep.add(res.WorkflowID, res.Err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel replay: %v\n", err)
		return replayBadUsage
	}
	return replayOK
}

// replayReport prints one line per history and counts the outcomes.
type replayReport struct {
	out                    io.Writer
	ok, failed, unreadable int
}

// add reports the replay of one history, named by label.
func (p *replayReport) add(label string, err error) {
	var re *durable.ReplayError
	switch {
	case err == nil:
		p.ok++
		fmt.Fprintf(p.out, "ok    %s\n", label)
	case errors.As(err, &re):
		p.failed++
		fmt.Fprintf(p.out, "FAIL  %s: %s\n", label, describeReplayError(re))
	default:
		p.unreadable++
		fmt.Fprintf(p.out, "ERROR %s: %v\n", label, err)
	}
}

// finish prints the summary and returns the exit status.
func (p *replayReport) finish() int {
	total := p.ok + p.failed + p.unreadable
	fmt.Fprintf(p.out, "%d replayed: %d ok, %d failed, %d unreadable\n", total, p.ok, p.failed, p.unreadable)
	switch {
	case p.failed > 0:
		return replayFailed
	case p.unreadable > 0:
		return replayBadUsage
	}
	return replayOK
}

// describeReplayError says where a history stopped replaying and why.
func describeReplayError(re *durable.ReplayError) string {
	s := fmt.Sprintf("workflow %s, run %s", re.WorkflowType, re.RunID)
	if re.EventID != 0 {
		s += fmt.Sprintf(", event %d (%s)", re.EventID, re.EventType)
	}
	var nd *durable.NonDeterminismError
	if errors.As(re.Err, &nd) {
		return s + ": non-deterministic: history has " + orNothing(nd.Expected) + ", code issued " + orNothing(nd.Actual)
	}
	return s + ": " + re.Err.Error()
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
