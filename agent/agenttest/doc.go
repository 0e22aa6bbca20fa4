// Package agenttest replays recorded agent runs as regression tests.
//
// Record an agent run once, against the real model and tools, and save it
// under testdata/:
//
//	rec, err := agenttest.Record(ctx, engine, "ticket-1")
//	err = rec.Save("testdata/ticket-1.json")
//
// A test then replays it against the current code, offline:
//
//	func TestTicketReplay(t *testing.T) {
//		rec, err := agenttest.Load("testdata/ticket-1.json")
//		require.NoError(t, err)
//		agenttest.RequireReplay(t, rec, []*agent.Agent{support}, nil)
//	}
//
// Replay runs the agent's workflow on a fresh engine over a temporary
// SQLite file, with the run's recorded input and workflow ID. Each model
// call is answered with the answer recorded for that run and turn, and each
// tool call with its recorded result: no model, no network, no side effect.
// What the current code does with those answers is compared with the
// recording: the messages it sends to the model at each turn, the arguments
// of each tool call, and the run's Result (status, output, turns, usage,
// cost, tools, handoffs). Sub-agent runs are replayed the same way from
// their own recorded histories, which Record collects. The recorded
// histories are also replayed with durable.Replayer, which reports workflow
// code that would no longer resume the recorded runs.
package agenttest
