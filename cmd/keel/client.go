package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
)

// What the client commands (run, runs, history, signal, cancel, approve,
// approvals) share: the --db flag, opening the engine, finding a run.

// dbFlag adds the --db flag to cmd.
func dbFlag(cmd *cobra.Command, db *string) {
	cmd.Flags().StringVar(db, "db", envOr("KEEL_DB", "keel.db"), "SQLite file or postgres:// URL (env KEEL_DB)")
}

// checkDB fails with a usage error when db names a SQLite file that does
// not exist, so that a mistyped --db creates no empty database.
func checkDB(db string) error {
	if appdb.IsPostgresURL(db) {
		return nil
	}
	if db == "" {
		return usageErrorf("--db is empty")
	}
	if _, err := os.Stat(db); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usageErrorf("database %s does not exist (give --db or set KEEL_DB)", db)
		}
		return usageErrorf("database %s: %v", db, err)
	}
	return nil
}

// clientLogger logs the engine's warnings and errors to w.
func clientLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openEngine opens an engine on db with no workers. Unless create is set,
// a SQLite file that does not exist is a usage error.
func openEngine(ctx context.Context, db string, create bool, cfg *durable.Config) (*durable.Engine, func(), error) {
	if !create {
		if err := checkDB(db); err != nil {
			return nil, nil, err
		}
	}
	st, closeStore, err := openStore(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	e, err := newEngine(st, cfg)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return e, closeStore, nil
}

// findRun returns the run that id names: a workflow ID (its running run,
// or else its latest) or a run ID. cmd names the command in errors.
func findRun(ctx context.Context, e *durable.Engine, cmd, id string) (durable.RunInfo, error) {
	info, err := e.Describe(ctx, id)
	if errors.Is(err, durable.ErrRunNotFound) {
		info, err = e.DescribeRun(ctx, id)
	}
	if errors.Is(err, durable.ErrRunNotFound) {
		return info, notFoundErrorf("%s: no run or workflow with ID %q", cmd, id)
	}
	return info, err
}

// readJSONArg reads a JSON value given to flag: inline, "@FILE" for a
// file's content, or "-" for standard input. It fails with a usage error
// when the value is not JSON.
func readJSONArg(cmd, flag, v string, stdin io.Reader) (json.RawMessage, error) {
	data := []byte(v)
	switch {
	case v == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, usageErrorf("%s: --%s -: reading standard input: %v", cmd, flag, err)
		}
		data = b
	case strings.HasPrefix(v, "@"):
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, usageErrorf("%s: --%s %s: %v", cmd, flag, v, err)
		}
		data = b
	}
	data = []byte(strings.TrimSpace(string(data)))
	if len(data) == 0 {
		return nil, usageErrorf("%s: --%s is empty: give a JSON value, e.g. null or {}", cmd, flag)
	}
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, usageErrorf("%s: --%s is not valid JSON: %v", cmd, flag, err)
	}
	return raw, nil
}

// abbrev returns s on one line, cut to at most n characters.
func abbrev(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// abbrevJSON returns a JSON payload compacted to one line, cut to at most
// n characters.
func abbrevJSON(raw json.RawMessage, n int) string {
	// Decoded and encoded again, so that the JSON encoder's escapes of
	// <, > and & read as themselves; numbers keep their digits.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return abbrev(string(raw), n)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return abbrev(string(raw), n)
	}
	return abbrev(strings.TrimSuffix(b.String(), "\n"), n)
}

// formatTime formats t for tables: local time to the second, "-" when zero.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
