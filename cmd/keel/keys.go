package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/server"
)

func init() { commands = append(commands, keysCmd) }

func keysCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys",
	}
	cmd.PersistentFlags().StringVar(&db, "db", envOr("KEEL_DB", "keel.db"), "SQLite file or postgres:// URL (env KEEL_DB)")
	open := func(cmd *cobra.Command) (*server.KeyStore, func(), error) {
		adb, err := appdb.Open(cmd.Context(), db)
		if err != nil {
			return nil, nil, err
		}
		ks, err := server.NewKeyStore(cmd.Context(), adb)
		if err != nil {
			adb.Close()
			return nil, nil, err
		}
		return ks, func() { adb.Close() }, nil
	}

	var subject string
	var scopes []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it (once: only its hash is stored)",
		Example: `  keel keys create --subject ci --scope trigger
  keel keys create --subject lena@example.com --scope review`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			var sc []server.Scope
			for _, s := range scopes {
				for _, part := range strings.Split(s, ",") {
					p, err := server.ParseScope(strings.TrimSpace(part))
					if err != nil {
						return err
					}
					sc = append(sc, p)
				}
			}
			res, err := ks.Create(cmd.Context(), server.CreateKeyParams{Subject: subject, Scopes: sc})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "Created key %s for %s with scopes %s. Keep it now: it cannot be shown again.\n",
				res.Key.ID, res.Key.Subject, joinScopes(res.Key.Scopes))
			return nil
		},
	}
	create.Flags().StringVar(&subject, "subject", "", "who uses the key: a reviewer's name, a service's (required)")
	create.Flags().StringArrayVar(&scopes, "scope", nil, "read, trigger, review or admin (repeatable, or comma-separated; required)")
	_ = create.MarkFlagRequired("subject")
	_ = create.MarkFlagRequired("scope")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never their secrets)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			keys, err := ks.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSUBJECT\tSCOPES\tCREATED\tREVOKED")
			for _, k := range keys {
				revoked := ""
				if !k.RevokedAt.IsZero() {
					revoked = k.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Subject, joinScopes(k.Scopes), k.CreatedAt.Format(time.RFC3339), revoked)
			}
			return tw.Flush()
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := ks.Revoke(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked key %s.\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func joinScopes(s []server.Scope) string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = string(sc)
	}
	return strings.Join(parts, ",")
}
