package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/durable"
)

func init() { commands = append(commands, cancelCmd) }

// defaultCancelReason is recorded when keel cancel is given no --reason.
const defaultCancelReason = "canceled with keel cancel"

func cancelCmd() *cobra.Command {
	var (
		db     string
		reason string
	)
	cmd := &cobra.Command{
		Use:   "cancel WORKFLOW_ID [--reason TEXT]",
		Short: "Ask a running run to cancel",
		Long: `Ask the running run of a workflow ID (or the run a run ID names) to cancel.
The request is recorded in its history with the reason: the workflow's
blocking calls return a cancellation error, its activities see a canceled
context at their next heartbeat, and a workflow that gives up closes as
canceled (it may first clean up). keel cancel returns once the request is
recorded; follow the run with keel history.`,
		Example: `  keel cancel ticket-42 --reason "customer withdrew the request"
  keel cancel ticket-42 && keel history ticket-42`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCancel(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), db, args[0], reason)
		},
	}
	dbFlag(cmd, &db)
	cmd.Flags().StringVar(&reason, "reason", defaultCancelReason, "why, recorded in the run's history")
	return asClientCmd(cmd)
}

func runCancel(ctx context.Context, stdout, stderr io.Writer, db, id, reason string) error {
	if id == "" {
		return usageErrorf("cancel: the workflow ID is empty")
	}
	e, closeStore, err := openEngine(ctx, db, false, &durable.Config{Logger: clientLogger(stderr)})
	if err != nil {
		return err
	}
	defer closeStore()
	info, err := findRun(ctx, e, "cancel", id)
	if err != nil {
		return err
	}
	if info.Status.Closed() {
		return failedErrorf("cancel: run %s of workflow %s has closed (%s)", info.RunID, info.WorkflowID, info.Status)
	}
	if err := runActionError("cancel", info, e.Cancel(ctx, info.WorkflowID, reason)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cancel requested for run %s of workflow %s\n", info.RunID, info.WorkflowID)
	return nil
}
