package offline

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/keelhq/keel/llm"
)

// persona is the kind of agent the instructions describe.
type persona int

const (
	personaGeneral persona = iota
	personaSupport
	personaSales
	personaLegal
	personaDealDesk
)

// personaOf reads the instructions first, then the user's messages.
func personaOf(conv *conversation) persona {
	for _, text := range []string{strings.ToLower(conv.system), strings.ToLower(conv.userText)} {
		switch {
		case strings.Contains(text, "deal desk"):
			return personaDealDesk
		case mentionsAny(text, []string{"legal", "lawyer", "counsel", "contract", "memo", "nda", "clause"}):
			return personaLegal
		case mentionsAny(text, []string{"sales", "follow-up", "follow up", "prospect", "lead"}):
			return personaSales
		case mentionsAny(text, []string{"support", "ticket", "helpdesk", "help desk"}):
			return personaSupport
		}
	}
	return personaGeneral
}

// issue is a clause of a document that a legal review flags.
type issue struct {
	topic    string
	sentence string
	note     string
	severity string // low, medium, high
}

var riskRules = []struct {
	re       *regexp.Regexp
	topic    string
	note     string
	severity string
}{
	{regexp.MustCompile(`(?i)unlimited liabilit|uncapped|without limit`), "unlimited liability", "Liability is not capped; ask for a cap (for example 12 months of fees).", "high"},
	{regexp.MustCompile(`(?i)indemnif`), "indemnification", "Indemnity obligations should be mutual and limited to third-party claims.", "high"},
	{regexp.MustCompile(`(?i)liabilit`), "liability", "Check the limitation of liability and its exclusions.", "medium"},
	{regexp.MustCompile(`(?i)auto(matic(ally)?)?[- ]?renew|renews? automatically|evergreen`), "automatic renewal", "Automatic renewal needs a notice window and an opt-out.", "medium"},
	{regexp.MustCompile(`(?i)terminat`), "termination", "Termination rights should be mutual, with a cure period.", "medium"},
	{regexp.MustCompile(`(?i)exclusiv`), "exclusivity", "Exclusivity restricts the business; limit its scope and term.", "high"},
	{regexp.MustCompile(`(?i)non-?compet`), "non-compete", "Non-compete clauses need a narrow scope and duration.", "high"},
	{regexp.MustCompile(`(?i)penalt|liquidated damages|late fee`), "penalties", "Penalties should be proportionate and capped.", "medium"},
	{regexp.MustCompile(`(?i)warrant`), "warranties", "Review the warranties and their disclaimers.", "low"},
	{regexp.MustCompile(`(?i)governing law|jurisdiction|venue`), "governing law", "Confirm the governing law and venue are acceptable.", "low"},
	{regexp.MustCompile(`(?i)confidential`), "confidentiality", "Confidentiality should be mutual with standard exceptions.", "low"},
	{regexp.MustCompile(`(?i)assign`), "assignment", "Assignment should require consent, except to an affiliate or successor.", "low"},
	{regexp.MustCompile(`(?i)discount`), "discount", "Discounts beyond the standard band need deal desk approval.", "medium"},
}

var reSentence = regexp.MustCompile(`[^.!?\n]+[.!?]?`)

// findIssues returns the sentences of the user's messages and tool results
// that raise a known risk, one per sentence, in order, at most eight.
func findIssues(conv *conversation) []issue {
	text := conv.userText
	for _, r := range conv.results {
		text += "\n" + r.Content
	}
	var out []issue
	for _, s := range reSentence.FindAllString(text, -1) {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		for _, rule := range riskRules {
			if rule.re.MatchString(s) {
				out = append(out, issue{topic: rule.topic, sentence: truncate(s, 300), note: rule.note, severity: rule.severity})
				break
			}
		}
		if len(out) == 8 {
			break
		}
	}
	return out
}

// riskLevel rates a set of issues: high with any high-severity issue or
// three or more issues, medium with some, low with none.
func riskLevel(issues []issue) string {
	if len(issues) == 0 {
		return "low"
	}
	if len(issues) >= 3 {
		return "high"
	}
	for _, is := range issues {
		if is.severity == "high" {
			return "high"
		}
	}
	return "medium"
}

// summarize renders a tool result in one line: the scalar fields of a JSON
// object, the size and first entry of a list, or the start of the text.
func summarize(content string) string {
	content = strings.TrimSpace(content)
	var v any
	if json.Unmarshal([]byte(content), &v) != nil {
		return truncate(strings.Join(strings.Fields(content), " "), 200)
	}
	switch x := v.(type) {
	case map[string]any:
		return truncate(fields(x), 200)
	case []any:
		if len(x) == 0 {
			return "no results"
		}
		first := fmt.Sprint(x[0])
		if m, ok := x[0].(map[string]any); ok {
			first = fields(m)
		}
		return truncate(fmt.Sprintf("%d result(s); first: %s", len(x), first), 200)
	case nil:
		return "no content"
	default:
		return truncate(fmt.Sprint(x), 200)
	}
}

func fields(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			parts = append(parts, k+"="+truncate(v, 60))
		case float64, bool:
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		case []any:
			parts = append(parts, fmt.Sprintf("%s=[%d]", k, len(v)))
		}
		if len(parts) == 6 {
			break
		}
	}
	return strings.Join(parts, ", ")
}

// failed reports whether a tool result reports a failure or a refusal.
func failed(content string) bool {
	l := strings.ToLower(content)
	for _, w := range []string{`"error"`, "error:", "failed", "rejected", "denied", "not approved", "timed out"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

func resultLines(conv *conversation) string {
	var b strings.Builder
	for _, r := range conv.results {
		name := r.Name
		if name == "" {
			name = r.CallID
		}
		fmt.Fprintf(&b, "- %s: %s\n", name, summarize(r.Content))
	}
	return b.String()
}

func anyFailed(conv *conversation) []string {
	var out []string
	for _, r := range conv.results {
		if failed(r.Content) {
			out = append(out, r.Name)
		}
	}
	return out
}

// answer writes the final text reply.
func answer(conv *conversation) string {
	q := headline(conv.question, 120)
	if q == "" {
		q = "your request"
	}
	var b strings.Builder
	switch personaOf(conv) {
	case personaLegal:
		b.WriteString(memo(conv))
	case personaSales:
		b.WriteString(Label + " Draft follow-up email\n\n")
		b.WriteString(emailDraft(conv))
	case personaDealDesk:
		fmt.Fprintf(&b, "%s Deal desk summary for: %s\n\n", Label, q)
		if len(conv.results) > 0 {
			b.WriteString("Input from specialists:\n")
			b.WriteString(resultLines(conv))
			b.WriteString("\n")
		}
		b.WriteString("Recommendation: " + recommendation(conv))
	case personaSupport:
		fmt.Fprintf(&b, "%s Reply to: %q\n\n", Label, q)
		if len(conv.results) > 0 {
			b.WriteString("What I checked:\n")
			b.WriteString(resultLines(conv))
			b.WriteString("\n")
		}
		b.WriteString(summaryLine(conv))
	default:
		fmt.Fprintf(&b, "%s You asked: %q\n\n", Label, q)
		if len(conv.results) > 0 {
			b.WriteString("Tool results:\n")
			b.WriteString(resultLines(conv))
			b.WriteString("\n")
		}
		b.WriteString(summaryLine(conv))
	}
	b.WriteString("\n\n(Written by Keel's deterministic offline model; no language model was called.)")
	return b.String()
}

// summaryLine is a one-paragraph answer built from the tool results,
// without the label.
func summaryLine(conv *conversation) string {
	if len(conv.results) == 0 {
		return "I read your message (" + headline(conv.question, 80) + ") and have nothing to look up; a person will follow up if needed."
	}
	var found, done []string
	for _, r := range conv.results {
		switch classify(llm.ToolSpec{Name: r.Name}) {
		case classRead, classDelegate:
			found = append(found, summarize(r.Content))
		default:
			status := "done"
			if failed(r.Content) {
				status = "not done: " + summarize(r.Content)
			}
			done = append(done, r.Name+" ("+status+")")
		}
	}
	var parts []string
	if len(found) > 0 {
		parts = append(parts, "Found: "+strings.Join(found, "; ")+".")
	}
	if len(done) > 0 {
		parts = append(parts, "Actions: "+strings.Join(done, ", ")+".")
	}
	if bad := anyFailed(conv); len(bad) > 0 {
		parts = append(parts, "Not everything succeeded ("+strings.Join(bad, ", ")+"); this needs a person's attention.")
	}
	return strings.Join(parts, " ")
}

// recommendation weighs the issues and tool results (without the label).
func recommendation(conv *conversation) string {
	issues := findIssues(conv)
	bad := anyFailed(conv)
	switch {
	case len(bad) > 0:
		return "Escalate: " + strings.Join(bad, ", ") + " reported a problem."
	case riskLevel(issues) == "high":
		return "Escalate for review: high risk (" + topics(issues) + ")."
	case len(issues) > 0:
		return "Approve with changes: address " + topics(issues) + "."
	}
	return "Approve: no blocking issue found."
}

func topics(issues []issue) string {
	var ts []string
	for _, is := range issues {
		ts = appendNew(ts, is.topic)
	}
	return strings.Join(ts, ", ")
}

// memo writes a legal memo on the user's text.
func memo(conv *conversation) string {
	issues := findIssues(conv)
	var b strings.Builder
	b.WriteString(Label + " MEMORANDUM\n")
	b.WriteString("Re: " + headline(conv.question, 80) + "\n\n")
	fmt.Fprintf(&b, "Summary: reviewed %d words; %d issue(s) found; risk level %s.\n",
		len(strings.Fields(conv.userText)), len(issues), riskLevel(issues))
	if len(issues) > 0 {
		b.WriteString("\nIssues:\n")
		for i, is := range issues {
			fmt.Fprintf(&b, "%d. %s (%s): %q %s\n", i+1, is.topic, is.severity, is.sentence, is.note)
		}
	}
	if len(conv.results) > 0 {
		b.WriteString("\nSources consulted:\n")
		b.WriteString(resultLines(conv))
	}
	b.WriteString("\nRecommendation: " + recommendation(conv))
	return b.String()
}

// emailDraft writes a follow-up email.
func emailDraft(conv *conversation) string {
	to := "the customer"
	if len(conv.facts.emails) > 0 {
		to = conv.facts.emails[0]
	}
	return "To: " + to + "\nSubject: Following up: " + headline(conv.question, 60) + "\n\n" + emailBody(conv)
}

// emailBody writes the body of an email to the customer.
func emailBody(conv *conversation) string {
	name := nameFromEmail(conv.facts)
	if v, ok := conv.facts.str("name", "customer_name", "first_name"); ok {
		name = v
	}
	if v, ok := customerName(conv); ok {
		name = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nHi %s,\n\nThank you for your message about %q.", Label, name, headline(conv.question, 80))
	var found []string
	for _, r := range conv.results {
		if classify(llm.ToolSpec{Name: r.Name}) == classSend {
			continue
		}
		found = append(found, findings(r)...)
	}
	if len(found) > 0 {
		b.WriteString(" Here is what we found:\n")
		for _, f := range found {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	} else {
		b.WriteString("\n")
	}
	if personaOf(conv) == personaSales {
		b.WriteString("\nWould you have 20 minutes next week to talk about next steps?\n")
	} else {
		b.WriteString("\nReply to this email if anything is still unclear.\n")
	}
	b.WriteString("\nBest regards,\nThe team")
	return b.String()
}

// noteFor writes a short note for a record update or a free-text field.
func noteFor(sc *synthContext) string {
	conv := sc.conv
	if len(conv.results) == 0 {
		return Label + " " + headline(conv.question, 160)
	}
	names := make([]string, 0, len(conv.results))
	for _, r := range conv.results {
		names = append(names, r.Name)
	}
	return fmt.Sprintf("%s Handled %q using %s.", Label, headline(conv.question, 80), strings.Join(names, ", "))
}

// isListOfIssues reports whether an array property lists findings.
func isListOfIssues(name string) bool {
	return hasWord(name, "issues", "risks", "findings", "concerns", "flags", "clauses", "problems", "redlines")
}

// structured writes the final answer as JSON following the response
// format's schema.
func structured(req *llm.Request, conv *conversation) (string, error) {
	out := synthesize(req.ResponseFormat.Schema, &synthContext{conv: conv, output: true, class: classDelegate})
	if !json.Valid(out) {
		return "", &llm.Error{Kind: llm.KindInvalidResponse, Message: "offline: cannot build output for schema " + req.ResponseFormat.Name}
	}
	return string(out), nil
}

// customerName finds the customer's name in a lookup's result: the "name"
// of its "customer" object, or of the result itself when that is a
// customer (it has an email), rather than the first name anywhere, which
// may be a contact's.
func customerName(conv *conversation) (string, bool) {
	for _, r := range conv.results {
		var m map[string]any
		if json.Unmarshal([]byte(r.Content), &m) != nil {
			continue
		}
		if c, ok := m["customer"].(map[string]any); ok {
			if n, ok := c["name"].(string); ok && n != "" {
				return n, true
			}
		}
		if _, hasEmail := m["email"]; hasEmail {
			if n, ok := m["name"].(string); ok && n != "" {
				return n, true
			}
		}
	}
	return "", false
}

// findings turns a tool result into the lines an email tells the customer:
// the articles a search found (title and snippet); nothing for records the
// customer knows (their own profile, their ticket); else a summary.
func findings(r toolResult) []string {
	var v any
	if json.Unmarshal([]byte(r.Content), &v) != nil {
		return []string{summarize(r.Content)}
	}
	var articles []any
	switch x := v.(type) {
	case []any:
		articles = x
	case map[string]any:
		if list, ok := x["results"].([]any); ok {
			articles = list
		} else if _, ok := x["title"]; ok {
			articles = []any{x}
		} else if isRecordOrAck(x) {
			return nil
		} else {
			return []string{summarize(r.Content)}
		}
	}
	var out []string
	for _, a := range articles {
		m, ok := a.(map[string]any)
		if !ok {
			continue
		}
		title, _ := m["title"].(string)
		if title == "" {
			continue
		}
		line := fmt.Sprintf("our help-center article %q", title)
		for _, k := range []string{"snippet", "body", "text", "content"} {
			if snip, ok := m[k].(string); ok && snip != "" {
				line += ": " + truncate(strings.Join(strings.Fields(strings.ReplaceAll(snip, "**", "")), " "), 160)
				break
			}
		}
		out = append(out, line)
		if len(out) == 1 { // the most relevant article
			break
		}
	}
	return out
}

// isRecordOrAck reports whether a tool result is a record the customer
// knows already (their profile, their ticket) or a bare acknowledgement,
// none of which an email repeats.
func isRecordOrAck(m map[string]any) bool {
	for _, k := range []string{"customer", "ticket", "subject", "email"} {
		if _, ok := m[k]; ok {
			return true
		}
	}
	for k := range m {
		switch k {
		case "ok", "status", "id", "updated":
		default:
			return false
		}
	}
	return true
}
