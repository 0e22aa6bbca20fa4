// Command salesfollowup runs the sales follow-up example once, with
// seconds standing for days: two leads, one who replies and one who does
// not. See package github.com/keelhq/keel/examples/salesfollowup.
//
//	go run ./examples/salesfollowup/cmd/salesfollowup [-db keel.db] [-v]
package main

import (
	"github.com/keelhq/keel/examples/salesfollowup"
	"github.com/keelhq/keel/examples/setup"
)

func main() {
	setup.Main(salesfollowup.Name, func(env *setup.Env) (setup.Demo, error) {
		return salesfollowup.New(env, nil)
	})
}
