// Package setup is what Keel's example agents share: the model they run on,
// the application services on one database, and the standalone program
// each example's main package runs.
//
// # The model
//
// ModelFromEnv picks OpenAI's chat API (package llm/openai) when
// OPENAI_API_KEY is set, with OPENAI_BASE_URL and OPENAI_MODEL for any
// compatible server, and otherwise the deterministic offline model
// (package llm/offline), which needs no network and labels everything it
// writes "[offline model]".
//
// # The Env
//
// New sets up an Env on an engine and its application database (a SQLite
// file or Postgres, usually the engine's own): it registers the model on an
// agent Runtime, migrates and opens the CRM, knowledge base and ticket
// stores (loading their demo data: twelve help-center articles, three
// customers, tickets T-1 to T-3), the email outbox (SendGrid with
// SENDGRID_API_KEY, else a local outbox whose messages have status
// "local"), billing (Stripe with STRIPE_SECRET_KEY, else the local ledger
// only, status "local") and an
// approval service (hitl) with ReviewerGroups.
//
//	env, err := setup.New(ctx, engine, db, nil)
//	ex, err := support.New(env, nil)
//	for _, q := range env.TaskQueues() {
//		engine.NewWorker(&durable.WorkerOptions{TaskQueue: q})
//	}
//
// # Standalone programs
//
// Each example's cmd/<name>/main.go calls Main with a function that builds
// the example; RunDemo opens the database (a new SQLite file unless -db
// names one), starts an engine with its workers, and plays the example's
// demo.
package setup
