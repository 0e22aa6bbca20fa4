// Command dealdesk runs the deal desk example once: a sales agent asks a
// legal agent and a billing agent, in parallel, to check a deal, then
// closes it. See package github.com/keelhq/keel/examples/dealdesk.
//
//	go run ./examples/dealdesk/cmd/dealdesk [-db keel.db] [-v]
package main

import (
	"github.com/keelhq/keel/examples/dealdesk"
	"github.com/keelhq/keel/examples/setup"
)

func main() {
	setup.Main(dealdesk.Name, func(env *setup.Env) (setup.Demo, error) {
		return dealdesk.New(env, nil)
	})
}
