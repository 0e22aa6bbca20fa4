// Package failpoint provides named hooks at which tests crash or fail a
// process: before and after every durable write of the engine's store (see
// durable's failpoints_on.go), around an approval decision (package hitl)
// and around the billing ledger's writes (package billing).
//
// The hooks exist only in test builds. Without the build tag failpoints,
// Inject is an inlinable function that returns nil, and nothing of this
// package's machinery is compiled in. With the tag
//
//	go test -tags failpoints ./internal/crashall/
//
// Inject looks its name up in the configuration read from the environment
// when the process starts:
//
//	KEEL_FAILPOINTS='store.CompleteWorkflowTask.after=kill@3;store.Signal.before=error@1'
//
// # Rules
//
// The configuration is a list of rules separated by ';'. A rule is a
// pattern, '=', and an action. The pattern is a failpoint name, or a glob
// over names ('*' matches any run of characters: "store.*.after"); the
// first rule whose pattern matches a name decides, and each rule counts the
// hits of the names it matches. An action is a kind and an optional
// trigger:
//
//	kill        SIGKILL the process (no deferred call, no flush, no exit code)
//	error       return an *Error matching ErrInjected
//	ambiguous   return an *Error matching ErrAmbiguous (and ErrInjected): only
//	            on ".after" patterns, whose write has committed
//	off         nothing (to exclude names from a later, broader rule)
//
//	(none)      every hit
//	@n          the n-th hit only (1-based)
//	%p          each hit with probability p percent (0 < p <= 100)
//
// For example "store.*.after=ambiguous%1" makes 1% of the engine's
// committed store writes report an error, and "hitl.decide.after=kill@1"
// kills the process once the first decision has committed.
//
// Probabilistic triggers draw from a generator seeded by KEEL_FAILPOINTS_SEED
// (a decimal integer), or from a random seed when it is unset.
//
// # Discovery
//
// With KEEL_FAILPOINTS_LOG set to a file path, the first hit of each name in
// the process appends the name and a newline to that file (opened with
// O_APPEND, so several processes may share it, and lines written before a
// kill survive it). Hits returns how often each name was hit in this
// process. Together they list the failpoints a workload crosses.
//
// # Naming
//
// Names are dotted, lower-case for the package and the operation's own
// spelling for the method, and end in ".before" (nothing written yet) or
// ".after" (the write committed; reached only when it succeeded):
// "store.CreateRun.before", "store.CompleteWorkflowTask.close.after",
// "hitl.decide.after", "billing.ledger.before".
//
// The configuration is global to the process, as the environment is;
// Configure replaces it, for tests that drive failpoints in-process.
package failpoint
