package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/durable"
)

func init() { commands = append(commands, runsCmd) }

// runStatuses are the statuses --status accepts.
var runStatuses = []durable.Status{
	durable.StatusRunning, durable.StatusCompleted, durable.StatusFailed,
	durable.StatusCanceled, durable.StatusTerminated, durable.StatusContinuedAsNew,
}

// maxRunsLimit bounds --limit.
const maxRunsLimit = 1000

func runsCmd() *cobra.Command {
	var (
		db         string
		status     string
		typ        string
		workflowID string
		limit      int
		cursor     string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Long: `List runs, newest first, as a table (workflow ID, run ID, type, status,
created, closed) or, with --json, as JSON lines, one run per line.

When more runs match than --limit, the cursor of the next page is printed on
stderr as "next cursor: C"; pass it to --cursor to continue.`,
		Example: `  keel runs
  keel runs --status running --type support
  keel runs --json --limit 500 --cursor 1234 --db postgres://keel@db/keel`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := &durable.ListOptions{
				Status:       durable.Status(status),
				WorkflowType: typ,
				WorkflowID:   workflowID,
				Cursor:       cursor,
				Limit:        limit,
			}
			return runRuns(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), db, opts, asJSON)
		},
	}
	dbFlag(cmd, &db)
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only runs in this status: running, completed, failed, canceled, terminated, continued_as_new")
	f.StringVar(&typ, "type", "", "only runs of this workflow type (agent name)")
	f.StringVar(&workflowID, "workflow-id", "", "only the runs of this workflow ID")
	f.IntVar(&limit, "limit", 50, fmt.Sprintf("most runs to show, at most %d", maxRunsLimit))
	f.StringVar(&cursor, "cursor", "", "continue from a previous page's next cursor")
	f.BoolVar(&asJSON, "json", false, "print JSON lines, one run per line")
	return asClientCmd(cmd)
}

func runRuns(ctx context.Context, stdout, stderr io.Writer, db string, opts *durable.ListOptions, asJSON bool) error {
	if opts.Status != "" && !slices.Contains(runStatuses, opts.Status) {
		names := make([]string, len(runStatuses))
		for i, s := range runStatuses {
			names[i] = string(s)
		}
		return usageErrorf("runs: unknown --status %q (one of %s)", opts.Status, strings.Join(names, ", "))
	}
	if opts.Limit < 1 || opts.Limit > maxRunsLimit {
		return usageErrorf("runs: --limit must be between 1 and %d", maxRunsLimit)
	}
	e, closeStore, err := openEngine(ctx, db, false, &durable.Config{Logger: clientLogger(stderr)})
	if err != nil {
		return err
	}
	defer closeStore()
	runs, next, err := e.ListRuns(ctx, opts)
	if err != nil {
		// The stores report a cursor they did not make in their own words.
		if opts.Cursor != "" && strings.Contains(err.Error(), "cursor") {
			return usageErrorf("runs: bad --cursor %q: give the one a previous page printed", opts.Cursor)
		}
		return fmt.Errorf("runs: %w", err)
	}
	if asJSON {
		for _, r := range runs {
			if err := writeJSONLine(stdout, r); err != nil {
				return err
			}
		}
	} else if len(runs) == 0 {
		fmt.Fprintln(stderr, "no runs")
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKFLOW ID\tRUN ID\tTYPE\tSTATUS\tCREATED\tCLOSED")
		for _, r := range runs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.WorkflowID, r.RunID, r.WorkflowType, r.Status, formatTime(r.CreatedAt), formatTime(r.ClosedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if next != "" {
		fmt.Fprintf(stderr, "next cursor: %s\n", next)
	}
	return nil
}
