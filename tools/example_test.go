package tools_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/tools"
)

type weatherInput struct {
	City string `json:"city" jsonschema:"description=City name,minLength=1"`
}

type weather struct {
	City    string `json:"city"`
	Celsius int    `json:"celsius"`
}

func ExampleNew() {
	forecast := tools.MustNew("forecast", "Today's weather in a city",
		func(ctx context.Context, in weatherInput) (weather, error) {
			return weather{City: in.City, Celsius: 21}, nil
		}, nil)

	fmt.Println(string(forecast.Schema()))
	fmt.Println(forecast.Invoke(context.Background(), `{"city":"Lyon"}`).Text())
	fmt.Println(forecast.Invoke(context.Background(), `{"town":"Lyon"}`).Text())
	// Output:
	// {"properties":{"city":{"type":"string","minLength":1,"description":"City name"}},"additionalProperties":false,"type":"object","required":["city"]}
	// {"city":"Lyon","celsius":21}
	// error: invalid arguments for tool forecast: schema violation: at '': missing property 'city'; at '': additional properties 'town' not allowed
}

// Calls started from workflow code run as durable activities, in parallel;
// a bad call comes back as an error result, not as a failed run.
func ExampleSet_Start() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	forecast := tools.MustNew("forecast", "Today's weather in a city",
		func(ctx context.Context, in weatherInput) (weather, error) {
			return weather{City: in.City, Celsius: len(in.City) * 3}, nil
		}, nil)
	set, _ := tools.NewSet(forecast)

	trip := durable.NewWorkflow("trip", func(ctx durable.Context, cities []string) (string, error) {
		var futures []*tools.Future
		for i, city := range cities {
			call := tools.Call{ID: fmt.Sprint("call_", i), Name: "forecast", Arguments: fmt.Sprintf(`{"city":%q}`, city)}
			futures = append(futures, set.Start(ctx, call, nil))
		}
		futures = append(futures, set.Start(ctx, tools.Call{ID: "call_x", Name: "tides"}, nil))
		var lines []string
		for _, f := range futures {
			r, err := f.Get(ctx)
			if err != nil {
				return "", err
			}
			lines = append(lines, r.CallID+" "+r.Text())
		}
		return strings.Join(lines, "\n"), nil
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(set.Definitions()...)
	e.MustRegister(trip)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	out, err := trip.Run(ctx, e, []string{"Lyon", "Oslo", ""}, nil)
	fmt.Println(out, err)
	// Output:
	// call_0 {"city":"Lyon","celsius":12}
	// call_1 {"city":"Oslo","celsius":12}
	// call_2 error: invalid arguments for tool forecast: schema violation: at '/city': minLength: got 0, want 1
	// call_x error: tools: unknown tool: "tides"; available tools: forecast <nil>
}
