// Command support runs the support example once: an agent answers ticket
// T-1 of the demo data ("I was charged twice"). See package
// github.com/keelhq/keel/examples/support.
//
//	go run ./examples/support/cmd/support [-db keel.db] [-v]
package main

import (
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/examples/support"
)

func main() {
	setup.Main(support.Name, func(env *setup.Env) (setup.Demo, error) {
		return support.New(env, nil)
	})
}
