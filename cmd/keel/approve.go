package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
)

func init() { commands = append(commands, approveCmd, approvalsCmd) }

// groupsEnv holds the reviewer groups as JSON when --groups is not given.
const groupsEnv = "KEEL_GROUPS"

// groupsHelp says where reviewer groups come from.
const groupsHelp = `Reviewer groups come from --groups FILE, a JSON object of each group's
members, or else from the environment variable KEEL_GROUPS holding the same
JSON:

  {"legal": ["lena", "lars"], "finance": ["fred", "fiona"]}

or else from KEEL_REVIEWERS as keel serve reads it: "legal=lena,lars;finance=fred".`

// refusals name the reasons hitl refuses a decision, for the one-line
// error of keel approve.
var refusals = []struct {
	err  error
	name string
}{
	{hitl.ErrNotInGroup, "not_in_group"},
	{hitl.ErrSelfApproval, "self_approval"},
	{hitl.ErrAlreadyVoted, "already_voted"},
	{hitl.ErrExpired, "expired"},
	{hitl.ErrClosed, "closed"},
	{hitl.ErrArgsMismatch, "args_mismatch"},
	{hitl.ErrEditNotAllowed, "edit_not_allowed"},
	{hitl.ErrInvalidLink, "invalid_link"},
}

func approveCmd() *cobra.Command {
	var (
		db       string
		groups   string
		reviewer string
		reject   bool
		comment  string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "approve APPROVAL_ID --as REVIEWER [--reject] [--comment TEXT]",
		Short: "Approve or reject a pending approval as a reviewer",
		Long: `Decide an approval as REVIEWER: approve it, or with --reject reject it, with
an optional comment. The decision is bound to the arguments the approval
currently authorizes (their hash), recorded, and delivered to the waiting
run, whose history then shows the reviewer, the time and the comment.

Prints the approval's resulting status: approved once enough members of its
group approved, rejected by one rejection, or still pending. A refused
decision (the reviewer is not in the approval's group, asked for it, already
voted; the approval is closed or expired) prints the reason, e.g.
"refused (not_in_group)", and exits 1.

` + groupsHelp,
		Example: `  keel approve 7f3a9c2e-1b4d-4e8f-a0c1-5d6e7f8a9b0c --as lena --comment "refund is within policy"
  KEEL_GROUPS='{"legal": ["lena", "lars"]}' keel approve 7f3a9c2e-1b4d-4e8f-a0c1-5d6e7f8a9b0c --as lars --reject`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApprove(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), db, groups, args[0],
				hitl.DecideInput{Reviewer: reviewer, Approve: !reject, Comment: comment}, asJSON)
		},
	}
	dbFlag(cmd, &db)
	f := cmd.Flags()
	f.StringVar(&groups, "groups", "", "JSON file of reviewer groups (default: env "+groupsEnv+")")
	f.StringVar(&reviewer, "as", "", "the reviewer who decides (required)")
	f.BoolVar(&reject, "reject", false, "reject instead of approving")
	f.StringVar(&comment, "comment", "", "the reviewer's reason, recorded with the decision")
	f.BoolVar(&asJSON, "json", false, "print the approval as JSON")
	return asClientCmd(cmd)
}

func runApprove(ctx context.Context, stdout, stderr io.Writer, db, groupsFile, id string, in hitl.DecideInput, asJSON bool) error {
	if strings.TrimSpace(in.Reviewer) == "" {
		return usageErrorf("approve: --as REVIEWER is required: say who decides")
	}
	if id == "" {
		return usageErrorf("approve: the approval ID is empty")
	}
	groups, err := loadGroups("approve", groupsFile)
	if err != nil {
		return err
	}
	if groups == nil {
		return usageErrorf("approve: no reviewer groups: give --groups FILE or set %s (see keel approve --help)", groupsEnv)
	}
	svc, done, err := openApprovals(ctx, "approve", db, groups, stderr)
	if err != nil {
		return err
	}
	defer done()
	a, err := svc.Get(ctx, id)
	if errors.Is(err, hitl.ErrNotFound) {
		return notFoundErrorf("approve: no approval with ID %q", id)
	}
	if err != nil {
		return fmt.Errorf("approve: %w", err)
	}
	in.ArgsHash = a.ArgsHash
	a, err = svc.Decide(ctx, id, in)
	if err != nil {
		return decideError(err)
	}
	if asJSON {
		return writeJSONLine(stdout, a)
	}
	fmt.Fprintf(stdout, "approval %s (%s): %s\n", a.ID, abbrev(a.Title, 80), describeApproval(a))
	for _, v := range a.Votes {
		if v.Reviewer == in.Reviewer && !v.Delivered {
			fmt.Fprintf(stderr, "the decision is recorded but has not reached run %s yet; a running keel serve delivers it\n", a.RunID)
		}
	}
	return nil
}

// decideError turns a refused decision into the command's error.
func decideError(err error) error {
	switch {
	case errors.Is(err, hitl.ErrNotFound):
		return notFoundErrorf("approve: %v", err)
	case errors.Is(err, hitl.ErrInvalidInput):
		return usageErrorf("approve: %v", err)
	}
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			return failedErrorf("approve: refused (%s): %v", r.name, err)
		}
	}
	return fmt.Errorf("approve: %w", err)
}

// describeApproval says where an approval stands.
func describeApproval(a *hitl.Approval) string {
	var by []string
	for _, v := range a.Votes {
		verb := "approved"
		if !v.Approve {
			verb = "rejected"
		}
		by = append(by, v.Reviewer+" "+verb)
	}
	s := fmt.Sprintf("%s, %d of %d approvals", a.Status, a.Approvals(), a.Required)
	if len(by) > 0 {
		s += " (" + strings.Join(by, ", ") + ")"
	}
	return s
}

func approvalsCmd() *cobra.Command {
	var (
		db       string
		groups   string
		status   string
		reviewer string
		group    string
		workflow string
		limit    int
		cursor   string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "approvals [--status pending] [--as REVIEWER]",
		Short: "List approvals, newest first",
		Long: `List approvals, newest first: by default the pending ones. With --as, only
those REVIEWER may still decide (of one of their groups, not asked for by
them, not yet voted on by them): their queue. --status all lists every
status.

As a table (ID, status, group, votes, title, action, workflow, deadline) or,
with --json, JSON lines with the approvals' arguments and votes. When more
match than --limit, the next page's cursor is printed on stderr as
"next cursor: C".

--as needs the reviewer groups. ` + groupsHelp,
		Example: `  keel approvals
  keel approvals --as lena --groups groups.json
  keel approvals --status all --workflow ticket-42 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := &hitl.ListParams{Status: hitl.Status(status), Reviewer: reviewer, Group: group, WorkflowID: workflow, Cursor: cursor, Limit: limit}
			if status == "all" {
				p.Status = ""
			}
			return runApprovals(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), db, groups, p, cmd.Flags().Changed("as"), asJSON)
		},
	}
	dbFlag(cmd, &db)
	f := cmd.Flags()
	f.StringVar(&groups, "groups", "", "JSON file of reviewer groups (default: env "+groupsEnv+")")
	f.StringVar(&status, "status", string(hitl.StatusPending), "pending, approved, rejected, timed_out, canceled, or all")
	f.StringVar(&reviewer, "as", "", "only the approvals this reviewer may still decide")
	f.StringVar(&group, "group", "", "only the approvals of this reviewer group")
	f.StringVar(&workflow, "workflow", "", "only the approvals asked by this workflow ID")
	f.IntVar(&limit, "limit", 50, "most approvals to show, at most 500")
	f.StringVar(&cursor, "cursor", "", "continue from a previous page's next cursor")
	f.BoolVar(&asJSON, "json", false, "print JSON lines, one approval per line")
	return asClientCmd(cmd)
}

func runApprovals(ctx context.Context, stdout, stderr io.Writer, db, groupsFile string, p *hitl.ListParams, asSet, asJSON bool) error {
	switch p.Status {
	case "", hitl.StatusPending, hitl.StatusApproved, hitl.StatusRejected, hitl.StatusTimedOut, hitl.StatusCanceled:
	default:
		return usageErrorf("approvals: unknown --status %q (pending, approved, rejected, timed_out, canceled or all)", p.Status)
	}
	if p.Limit < 1 || p.Limit > 500 {
		return usageErrorf("approvals: --limit must be between 1 and 500")
	}
	if asSet && strings.TrimSpace(p.Reviewer) == "" {
		return usageErrorf("approvals: --as is empty")
	}
	groups, err := loadGroups("approvals", groupsFile)
	if err != nil {
		return err
	}
	if groups == nil {
		if p.Reviewer != "" {
			return usageErrorf("approvals: --as needs the reviewer groups: give --groups FILE or set %s", groupsEnv)
		}
		// Listing without a reviewer reads no group; the Service only
		// wants a valid configuration.
		groups = hitl.Groups{"-": {"-"}}
	}
	svc, done, err := openApprovals(ctx, "approvals", db, groups, stderr)
	if err != nil {
		return err
	}
	defer done()
	list, next, err := svc.List(ctx, p)
	if errors.Is(err, hitl.ErrInvalidInput) {
		return usageErrorf("approvals: %v", err)
	}
	if err != nil {
		return fmt.Errorf("approvals: %w", err)
	}
	if asJSON {
		for _, a := range list {
			if err := writeJSONLine(stdout, a); err != nil {
				return err
			}
		}
	} else if len(list) == 0 {
		fmt.Fprintln(stderr, "no approvals")
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tGROUP\tVOTES\tTITLE\tACTION\tWORKFLOW\tDEADLINE")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", a.ID, a.Status, a.Group, a.Approvals(), a.Required,
				abbrev(a.Title, 50), a.Action, a.WorkflowID, formatTime(a.Deadline))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if next != "" {
		fmt.Fprintf(stderr, "next cursor: %s\n", next)
	}
	return nil
}

// loadGroups reads the reviewer groups from file, or else from
// KEEL_GROUPS; nil when neither is given. cmd names the command in errors.
func loadGroups(cmd, file string) (hitl.Groups, error) {
	data, from := []byte(os.Getenv(groupsEnv)), groupsEnv
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageErrorf("%s: --groups: %v", cmd, err)
		}
		data, from = b, file
	}
	if strings.TrimSpace(string(data)) == "" {
		if file != "" {
			return nil, usageErrorf("%s: --groups %s is empty", cmd, file)
		}
		if v := os.Getenv("KEEL_REVIEWERS"); v != "" {
			g, err := parseReviewers(strings.Split(v, ";"))
			if err != nil {
				return nil, usageErrorf("%s: KEEL_REVIEWERS: %v", cmd, err)
			}
			return g, nil
		}
		return nil, nil
	}
	var g hitl.Groups
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, usageErrorf(`%s: reviewer groups in %s are not JSON of the form {"group": ["member", …]}: %v`, cmd, from, err)
	}
	if len(g) == 0 {
		return nil, usageErrorf("%s: reviewer groups in %s define no group", cmd, from)
	}
	return g, nil
}

// openApprovals opens the approval service on db; cmd names the command
// in errors.
func openApprovals(ctx context.Context, cmd, db string, groups hitl.Groups, stderr io.Writer) (*hitl.Service, func(), error) {
	logger := clientLogger(stderr)
	e, closeStore, err := openEngine(ctx, db, false, &durable.Config{Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	adb, err := appdb.Open(ctx, db)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	done := func() { _ = adb.Close(); closeStore() }
	cfg := &hitl.Config{Groups: groups, Logger: logger}
	if len(os.Getenv(hitl.LinkSecretEnv)) < hitl.MinLinkSecret {
		// The command signs no review link; the Service wants a key anyway.
		cfg.LinkSecret = make([]byte, hitl.MinLinkSecret)
		_, _ = rand.Read(cfg.LinkSecret)
	}
	svc, err := hitl.New(ctx, adb, e, cfg)
	if errors.Is(err, hitl.ErrInvalidConfig) {
		done()
		return nil, nil, usageErrorf("%s: reviewer groups: %v", cmd, err)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return svc, done, nil
}
