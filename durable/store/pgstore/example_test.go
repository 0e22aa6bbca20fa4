package pgstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
)

// Open a store on a pool the application owns, start a run and claim its
// first workflow task. The example needs a database
// (TEST_DATABASE_URL), so it is compiled but not run by go test.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("TEST_DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	st, err := pgstore.New(ctx, pool, nil) // applies the migrations
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	now := time.Now()
	res, err := st.CreateRun(ctx, store.CreateRunParams{
		RunID: "run-1", WorkflowID: "order-42", WorkflowType: "order", TaskQueue: "orders",
		StartEvent: store.Event{Type: "started"}, Now: now,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", res.Created)

	tasks, err := st.ClaimWorkflowTasks(ctx, store.ClaimParams{
		TaskQueue: "orders", Owner: "worker-1", Limit: 8, Now: now, LeaseUntil: now.Add(10 * time.Second),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("claimed:", len(tasks))
}

// Wake a poller as soon as a task on its queue may be runnable, in this
// process or another one, falling back to a slow poll. A notification is
// "w/<queue>" for a workflow task and "a/<queue>" for an activity task.
func ExampleStore_Notifications() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, err := pgxpool.New(ctx, os.Getenv("TEST_DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := pgstore.New(ctx, pool, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	wake := st.Notifications(ctx)
	for {
		select {
		case n := <-wake:
			if queue, ok := strings.CutPrefix(n, "w/"); ok {
				fmt.Println("claim workflow tasks on", queue)
			} else if queue, ok := strings.CutPrefix(n, "a/"); ok {
				fmt.Println("claim activity tasks on", queue)
			}
		case <-time.After(5 * time.Second):
			fmt.Println("poll every queue")
		case <-ctx.Done():
			return
		}
	}
}
