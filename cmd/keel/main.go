// Command keel is Keel's command-line interface.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keel:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "keel",
		Short:         "Keel: AI agents in Go that cannot lose their work",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(demoCmd())
	return root
}

func demoCmd() *cobra.Command {
	var db string
	var worker bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a durable workflow, kill its worker with SIGKILL, and watch a new worker resume it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if worker {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				return demo.Worker(ctx, db, cmd.OutOrStdout())
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return demo.Run(ctx, demo.Options{
				DB:  db,
				Out: cmd.OutOrStdout(),
				WorkerCommand: func(db string) *exec.Cmd {
					return exec.Command(exe, "demo", "--worker", "--db", db)
				},
			})
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "SQLite file (default: a new temporary file)")
	cmd.Flags().BoolVar(&worker, "worker", false, "run as the demo's worker process")
	_ = cmd.Flags().MarkHidden("worker")
	return cmd
}
