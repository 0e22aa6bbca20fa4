package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/durable"
)

func init() { commands = append(commands, signalCmd) }

func signalCmd() *cobra.Command {
	var (
		db        string
		payload   string
		requestID string
	)
	cmd := &cobra.Command{
		Use:   "signal WORKFLOW_ID NAME [--payload JSON]",
		Short: "Send a signal to a running run",
		Long: `Send the signal NAME with a JSON payload to the running run of a workflow ID
(or to the run a run ID names). Signals sent before the workflow waits for
them are kept, in order.

--payload takes JSON inline, @FILE to read it from a file, or - for stdin;
it defaults to null. A --request-id makes the signal idempotent: sending it
again with the same request ID is accepted and applied once.`,
		Example: `  keel signal ticket-42 customer-replied --payload '{"text": "It works now, thanks!"}'
  keel signal ticket-42 go-on --request-id retry-safe-1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSignal(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), db, args[0], args[1], payload, requestID)
		},
	}
	dbFlag(cmd, &db)
	cmd.Flags().StringVar(&payload, "payload", "null", "the signal's value: JSON, @FILE, or - for stdin")
	cmd.Flags().StringVar(&requestID, "request-id", "", "deduplication key: a repeated request ID is applied once")
	return asClientCmd(cmd)
}

func runSignal(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, db, id, name, payload, requestID string) error {
	if id == "" {
		return usageErrorf("signal: the workflow ID is empty")
	}
	if strings.TrimSpace(name) == "" {
		return usageErrorf("signal: the signal name is empty")
	}
	value, err := readJSONArg("signal", "payload", payload, stdin)
	if err != nil {
		return err
	}
	e, closeStore, err := openEngine(ctx, db, false, &durable.Config{Logger: clientLogger(stderr)})
	if err != nil {
		return err
	}
	defer closeStore()
	info, err := findRun(ctx, e, "signal", id)
	if err != nil {
		return err
	}
	if info.Status.Closed() {
		return failedErrorf("signal: run %s of workflow %s has closed (%s)", info.RunID, info.WorkflowID, info.Status)
	}
	err = e.Signal(ctx, info.WorkflowID, name, value, &durable.SignalOptions{RunID: info.RunID, RequestID: requestID})
	if err := runActionError("signal", info, err); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent signal %s to run %s of workflow %s\n", name, info.RunID, info.WorkflowID)
	return nil
}

// runActionError turns the error of a signal or cancel into the command's
// error and exit code.
func runActionError(cmd string, info durable.RunInfo, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, durable.ErrRunClosed):
		return failedErrorf("%s: run %s of workflow %s has closed", cmd, info.RunID, info.WorkflowID)
	case errors.Is(err, durable.ErrRunNotFound):
		return notFoundErrorf("%s: no run of workflow %s", cmd, info.WorkflowID)
	case errors.Is(err, durable.ErrPayloadTooLarge):
		return usageErrorf("%s: %v", cmd, err)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
