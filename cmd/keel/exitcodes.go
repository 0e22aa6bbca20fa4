package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of keel's commands, for scripts. keel replay uses the first
// three with the same meaning (see replay.go).
const (
	// exitOK: the command did what it was asked; the run completed.
	exitOK = 0
	// exitFailed: the run failed, was canceled or was terminated; a
	// decision, signal or cancel was refused (the approval is closed, the
	// reviewer may not decide, the run has closed); or an error that is
	// none of the below, such as an unreachable database.
	exitFailed = 1
	// exitUsage: bad flags or arguments, malformed JSON, an unknown
	// workflow, a SQLite file that does not exist. Nothing was written.
	exitUsage = 2
	// exitNotFound: no run or approval has the ID given.
	exitNotFound = 3
	// exitTimeout: keel stopped waiting for a run (--timeout passed, or
	// it was interrupted) before the run closed; the run goes on.
	exitTimeout = 4
)

// exitCodesHelp documents the exit codes in each command's --help.
const exitCodesHelp = `
Exit status:
  0  success (for keel run: the run completed)
  1  the run failed, was canceled or terminated; the decision, signal or
     cancel was refused; or another error (e.g. the database is unreachable)
  2  usage error: bad flags or arguments, malformed JSON, unknown workflow,
     no such database file; nothing is written
  3  not found: no run or approval with that ID
  4  timeout: keel stopped waiting (--timeout, or interrupted) before the
     run closed; the run goes on`

// exitError carries the exit code of a failed command. A silent one has
// had its outcome printed already: main prints nothing more.
type exitError struct {
	code   int
	err    error
	silent bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports bad input: exit code 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// notFoundErrorf reports an unknown run or approval: exit code 3.
func notFoundErrorf(format string, args ...any) error {
	return &exitError{code: exitNotFound, err: fmt.Errorf(format, args...)}
}

// failedErrorf reports a refused request: exit code 1.
func failedErrorf(format string, args ...any) error {
	return &exitError{code: exitFailed, err: fmt.Errorf(format, args...)}
}

// exitSilently ends the command with code, its outcome already printed.
func exitSilently(code int) error {
	return &exitError{code: code, silent: true}
}

// exitCode returns the exit code for a command's error: its exitError's,
// else 1.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case strings.HasPrefix(err.Error(), "unknown command "):
		return exitUsage
	}
	return exitFailed
}

// reportError prints a command's error as one line on w, unless it is
// silent, and returns the exit code.
func reportError(w io.Writer, err error) int {
	var ee *exitError
	if !errors.As(err, &ee) || !ee.silent {
		fmt.Fprintln(w, "keel:", err)
	}
	return exitCode(err)
}

// asClientCmd makes cmd's flag and argument errors usage errors (exit code
// 2) that point to its --help, and appends the exit codes to its help.
func asClientCmd(cmd *cobra.Command) *cobra.Command {
	cmd.Long = strings.TrimRight(cmd.Long, "\n") + "\n" + exitCodesHelp
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%s: %v (see %s --help)", c.Name(), err, c.CommandPath())
	})
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageErrorf("%s: %v (see %s --help)", c.Name(), err, c.CommandPath())
			}
			return nil
		}
	}
	return cmd
}
