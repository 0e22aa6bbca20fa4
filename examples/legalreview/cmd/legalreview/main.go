// Command legalreview runs the legal review example once: an agent drafts
// a memo on a contract, a lawyer approves it, and it is emailed. See
// package github.com/keelhq/keel/examples/legalreview.
//
//	go run ./examples/legalreview/cmd/legalreview [-db keel.db] [-v]
package main

import (
	"github.com/keelhq/keel/examples/legalreview"
	"github.com/keelhq/keel/examples/setup"
)

func main() {
	setup.Main(legalreview.Name, func(env *setup.Env) (setup.Demo, error) {
		return legalreview.New(env, nil)
	})
}
