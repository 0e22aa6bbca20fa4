package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/tools/kb"
)

func init() { commands = append(commands, kbCmd) }

func kbCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "kb",
		Short: "Manage the knowledge base that agents search",
	}
	cmd.PersistentFlags().StringVar(&db, "db", envOr("KEEL_DB", "keel.db"), "SQLite file or postgres:// URL (env KEEL_DB)")
	open := func(cmd *cobra.Command) (*kb.Store, func(), error) {
		adb, err := appdb.Open(cmd.Context(), db)
		if err != nil {
			return nil, nil, err
		}
		s, err := kb.New(cmd.Context(), adb, nil)
		if err != nil {
			adb.Close()
			return nil, nil, err
		}
		return s, func() { adb.Close() }, nil
	}

	var demo bool
	importCmd := &cobra.Command{
		Use:   "import [DIR]",
		Short: "Import the Markdown articles of a directory (or the demo articles with --demo)",
		Long: `Import every Markdown file (*.md, *.markdown) under DIR into the knowledge base.
Each file is one article: its key is the file name without the extension, its
title the front matter's title or the first "# " heading, its tags the front
matter's tags (tags: [billing, refunds]). Importing again updates the articles
whose files changed and adds no duplicates; articles without a file are kept.
Every file is checked before anything is written.`,
		Example: `  keel kb import ./help-center
  keel kb import --demo --db postgres://keel@db/keel`,
		Args: func(cmd *cobra.Command, args []string) error {
			if demo {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			var (
				res  kb.ImportResult
				from string
			)
			if demo {
				res, err = kb.LoadDemo(cmd.Context(), s)
				from = "the demo knowledge base"
			} else {
				res, err = kb.ImportDir(cmd.Context(), s, args[0])
				from = args[0]
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d articles from %s into %s: %d created, %d updated, %d unchanged\n",
				res.Total(), from, redact(db), res.Created, res.Updated, res.Unchanged)
			return nil
		},
	}
	importCmd.Flags().BoolVar(&demo, "demo", false, "import the demo articles of a SaaS support desk instead of a directory")

	var (
		tags  []string
		limit int
	)
	searchCmd := &cobra.Command{
		Use:     "search QUERY...",
		Short:   "Search the knowledge base as an agent's kb_search tool does",
		Example: `  keel kb search I was charged twice`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			results, err := s.Search(cmd.Context(), strings.Join(args, " "), &kb.SearchOpts{Tags: tags, Limit: limit})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(results) == 0 {
				fmt.Fprintln(out, "no articles match")
			}
			for i, r := range results {
				fmt.Fprintf(out, "%d. %s (%s) [%s]\n   %s\n", i+1, r.Title, r.Key, strings.Join(r.Tags, ", "), r.Snippet)
			}
			return nil
		},
	}
	searchCmd.Flags().StringSliceVar(&tags, "tag", nil, "only articles with this tag (repeat for several)")
	searchCmd.Flags().IntVar(&limit, "limit", kb.DefaultLimit, "most articles to show")

	cmd.AddCommand(importCmd, searchCmd)
	return cmd
}
