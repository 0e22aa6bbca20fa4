package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/catalog"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/demo"
	"github.com/keelhq/keel/server"
)

func init() { commands = append(commands, serveCmd) }

// agentDeps are what an agent may need when `keel serve` registers it.
type agentDeps struct {
	// Out receives the agent's narration, if it has any.
	Out io.Writer
	// DB is the application database (the engine's own).
	DB *appdb.DB
	// Approvals is the approval service; nil without reviewer groups.
	Approvals *hitl.Service
	Logger    *slog.Logger
}

// servedAgent registers an agent's workflows and activities on e and
// says how the server exposes it: its public name (as in
// POST /v1/agents/{name}/runs), its workflow and its task queue, which
// gets a worker.
type servedAgent func(e *durable.Engine, d agentDeps) (server.Agent, error)

// servedAgents lists the agents `keel serve` exposes, one entry each. An
// agent of package agent registers through a Runtime and is exposed under
// its name, on its task queue (which gets a worker):
//
//	func(e *durable.Engine, d agentDeps) (server.Agent, error) {
//		return server.Agent{Name: a.Name, TaskQueue: a.TaskQueue}, rt.Register(a)
//	},
var servedAgents = []servedAgent{
	func(e *durable.Engine, d agentDeps) (server.Agent, error) {
		wf, defs := demo.Definitions(d.Out)
		return server.Agent{Name: wf.Name(), Workflow: wf.Name()}, e.Register(defs...)
	},
}

func serveCmd() *cobra.Command {
	var (
		db          string
		addr        string
		baseURL     string
		queue       string
		reviewers   []string
		stopTimeout time.Duration
		pollEvery   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine, its workers and the HTTP server (API, reviewer pages, metrics) in one process",
		Long: `Run the engine, its workers and the HTTP server in one process until SIGINT or
SIGTERM, on a SQLite file (default ./keel.db) or PostgreSQL (--db postgres://…).

The server authenticates API keys (keel keys create); a key's subject is the
reviewer's identity. Without any key it serves loopback clients only, as the
reviewer "local", and refuses to listen on another address.

Reviewer groups for approvals are given with --reviewers group=member,member
(repeatable, or KEEL_REVIEWERS="legal=lena,lars;finance=fred", or KEEL_GROUPS as JSON
{"legal": ["lena", "lars"]}, as keel approve reads them). Review links are
signed with KEEL_LINK_SECRET (at least 32 bytes); browser sessions with
KEEL_SESSION_SECRET. Without them a random secret is used, and links and sessions
end when the process does.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			st, closeStore, err := openStore(ctx, db)
			if err != nil {
				return err
			}
			defer closeStore()
			adb, err := appdb.Open(ctx, db)
			if err != nil {
				return err
			}
			defer adb.Close()
			e, err := newEngine(st, &durable.Config{Logger: logger, PollInterval: pollEvery})
			if err != nil {
				return err
			}

			keys, err := server.NewKeyStore(ctx, adb)
			if err != nil {
				return err
			}
			active, err := keys.Active(ctx)
			if err != nil {
				return err
			}
			if active == 0 {
				keys = nil
			}

			var approvals *hitl.Service
			if len(reviewers) == 0 {
				if v := os.Getenv("KEEL_REVIEWERS"); v != "" {
					reviewers = strings.Split(v, ";")
				}
			}
			if len(reviewers) == 0 && os.Getenv(groupsEnv) != "" {
				// The JSON form keel approve reads.
				g, err := loadGroups("serve", "")
				if err != nil {
					return err
				}
				for name, members := range g {
					reviewers = append(reviewers, name+"="+strings.Join(members, ","))
				}
			}
			if len(reviewers) > 0 {
				groups, err := parseReviewers(reviewers)
				if err != nil {
					return err
				}
				hc := &hitl.Config{Groups: groups, Logger: logger}
				if len(os.Getenv(hitl.LinkSecretEnv)) == 0 {
					hc.LinkSecret = randomSecret()
					logger.Warn("KEEL_LINK_SECRET is not set: review links made by this process stop working when it exits")
				}
				if approvals, err = hitl.New(ctx, adb, e, hc); err != nil {
					return err
				}
			}

			deps := agentDeps{Out: cmd.OutOrStdout(), DB: adb, Approvals: approvals, Logger: logger}
			var agents []server.Agent
			queues := map[string]bool{queue: true}
			for i, register := range servedAgents {
				a, err := register(e, deps)
				if err != nil {
					return fmt.Errorf("register agent %d (%s): %w", i, a.Name, err)
				}
				if a.TaskQueue == "" {
					a.TaskQueue = "default"
				}
				queues[a.TaskQueue] = true
				agents = append(agents, a)
			}
			// The example agents: support, salesfollowup, legalreview,
			// dealdesk, on the offline model unless OPENAI_API_KEY is set.
			cat, err := catalog.Register(ctx, e, adb, &catalog.Config{Approvals: approvals, Logger: logger})
			if err != nil {
				return fmt.Errorf("register the example agents: %w", err)
			}
			defer cat.Env.Close()
			for _, en := range cat.Entries {
				agents = append(agents, server.Agent{Name: en.Name, Workflow: en.Workflow, TaskQueue: en.TaskQueue})
			}
			for name, why := range cat.Skipped {
				logger.Warn("example agent not served", "agent", name, "reason", why)
			}
			for _, q := range cat.TaskQueues() {
				queues[q] = true
			}
			if approvals == nil {
				// The examples' own reviewer groups (setup.ReviewerGroups).
				approvals = cat.Env.Approvals
			}

			var secret []byte
			if v := os.Getenv("KEEL_SESSION_SECRET"); v != "" {
				secret = []byte(v)
			}
			cfg := &server.Config{
				Agents:        agents,
				BaseURL:       baseURL,
				Engine:        e,
				Logger:        logger,
				SessionSecret: secret,
			}
			if keys != nil {
				cfg.Keys = keys
			}
			if approvals != nil {
				cfg.Approvals = approvals
			}
			srv, err := server.New(cfg)
			if err != nil {
				return err
			}

			for q := range queues {
				e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
			}
			if err := e.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			defer func() {
				logger.Info("stopping: finishing in-flight tasks", "timeout", stopTimeout)
				stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
				defer cancel()
				_ = e.Stop(stopCtx)
			}()
			if approvals != nil {
				go func() { _ = approvals.Run(ctx) }()
			}
			logger.Info("keel serving", "db", redact(db), "addr", addr, "agents", len(agents), "keys", active, "approvals", approvals != nil)
			return srv.ListenAndServe(ctx, addr)
		},
	}
	cmd.Flags().StringVar(&db, "db", envOr("KEEL_DB", "keel.db"), "SQLite file or postgres:// URL (env KEEL_DB)")
	cmd.Flags().StringVar(&addr, "addr", envOr("KEEL_ADDR", "127.0.0.1:8080"), "address to listen on (env KEEL_ADDR)")
	cmd.Flags().StringVar(&baseURL, "base-url", os.Getenv("KEEL_BASE_URL"), "public origin, e.g. https://keel.example.com (env KEEL_BASE_URL)")
	cmd.Flags().StringVar(&queue, "queue", "default", "a task queue to work, besides the agents' own")
	cmd.Flags().StringArrayVar(&reviewers, "reviewers", nil, "reviewer group, as group=member,member (repeatable; env KEEL_REVIEWERS, ';'-separated)")
	cmd.Flags().DurationVar(&stopTimeout, "stop-timeout", 30*time.Second, "how long a graceful stop waits for in-flight tasks")
	cmd.Flags().DurationVar(&pollEvery, "poll-interval", time.Second, "slow poll for work made runnable by other processes")
	return cmd
}

// parseReviewers reads group=member,member specs.
func parseReviewers(specs []string) (hitl.Groups, error) {
	groups := hitl.Groups{}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		name, members, ok := strings.Cut(spec, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--reviewers %q: want group=member,member", spec)
		}
		for _, m := range strings.Split(members, ",") {
			if m = strings.TrimSpace(m); m != "" {
				groups[strings.TrimSpace(name)] = append(groups[strings.TrimSpace(name)], m)
			}
		}
	}
	return groups, nil
}

func randomSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}
