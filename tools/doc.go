// Package tools defines the functions an agent's model can call, and runs
// each call as a durable activity.
//
// # Defining a tool
//
// A tool is a name, a description, a Go input type and a typed handler.
// New generates the input's JSON Schema from the type (with
// github.com/invopop/jsonschema; `json` tags name the properties, fields
// without omitempty are required, `jsonschema` tags add descriptions and
// constraints):
//
//	type LookupInput struct {
//		CustomerID string `json:"customer_id" jsonschema:"description=The CRM customer ID"`
//	}
//	type Customer struct {
//		Name string `json:"name"`
//		Plan string `json:"plan"`
//	}
//	lookup := tools.MustNew("crm_lookup", "Look a customer up in the CRM",
//		func(ctx context.Context, in LookupInput) (Customer, error) {
//			return crm.Get(ctx, in.CustomerID)
//		}, &tools.Options{
//			Activity: &durable.ActivityOptions{StartToCloseTimeout: 10 * time.Second},
//		})
//
// Spec gives the name, description and schema in the form model APIs take.
//
// # Running calls
//
// Every call runs as the tool's activity, named "tool." + the tool's name,
// with the tool's own timeouts and retry policy; register the activities
// with the engine (Tool.Definition, Set.Definitions). From workflow code,
// Tool.Start or Set.Start starts a call and returns a Future: start several
// before getting any result and they run in parallel. Once recorded, a call
// is never run again, on replay or after a crash.
//
// A call never fails the run. Its Result carries either the handler's
// output as JSON or an error the model can read and act on: arguments that
// are not JSON, violate the schema or carry unknown fields (validated with
// github.com/santhosh-tekuri/jsonschema/v6; the handler does not run),
// an unknown tool name, a handler that failed on every attempt its retry
// policy allowed or timed out, a call a reviewer refused. Result.Text
// renders it for a tool message.
//
// Inside a handler, CallInfo and IdempotencyKey describe the call. The key
// is derived from the run and the step, the same on every attempt of the
// call and different for every other call: pass it to APIs that accept one
// (a payment provider's Idempotency-Key, an email provider's message ID) so
// that a retried attempt does not act twice.
//
// # Approval
//
// A tool with Options.RequiresApproval runs only once an Approver (given in
// CallOptions) approves the exact arguments. The Approver is called from
// workflow code, so it can wait durably for a human. A refusal comes back
// to the model as an error Result with the reviewer's comment; an approval
// may carry edited arguments, which are used instead.
package tools
