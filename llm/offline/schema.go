package offline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keelhq/keel/llm"
)

// synthContext is what argument and output synthesis draws on.
type synthContext struct {
	conv  *conversation
	tool  llm.ToolSpec // zero for structured output
	class class
	// output is set for structured output: every property is filled and
	// free text is written for the reader.
	output bool
	root   map[string]any
	// item is the entry of a list being filled (an issue of a memo).
	item *issue
}

// synthesize returns a JSON value that follows schema, built from the
// conversation's facts.
func synthesize(schema json.RawMessage, sc *synthContext) json.RawMessage {
	var root map[string]any
	if len(schema) == 0 || json.Unmarshal(schema, &root) != nil || root == nil {
		return json.RawMessage("{}")
	}
	sc.root = root
	v := sc.value(root, "", 0)
	if v == nil {
		if _, isObj := root["properties"]; isObj || schemaType(root) == "object" {
			v = map[string]any{}
		}
	}
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return json.RawMessage(strings.TrimSpace(buf.String()))
}

// resolve follows $ref (local JSON pointers only), merges allOf and picks
// the first non-null branch of anyOf and oneOf.
func (sc *synthContext) resolve(s map[string]any) map[string]any {
	for i := 0; i < 16 && s != nil; i++ {
		ref, ok := s["$ref"].(string)
		if !ok {
			break
		}
		target := sc.pointer(ref)
		if target == nil {
			break
		}
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range s {
			if k != "$ref" {
				merged[k] = v
			}
		}
		s = merged
	}
	if all, ok := s["allOf"].([]any); ok {
		merged := map[string]any{}
		props := map[string]any{}
		var required []any
		for k, v := range s {
			if k != "allOf" {
				merged[k] = v
			}
		}
		if p, ok := s["properties"].(map[string]any); ok {
			for k, v := range p {
				props[k] = v
			}
		}
		if r, ok := s["required"].([]any); ok {
			required = append(required, r...)
		}
		for _, sub := range all {
			m, _ := sub.(map[string]any)
			m = sc.resolve(m)
			for k, v := range m {
				switch k {
				case "properties":
					if p, ok := v.(map[string]any); ok {
						for pk, pv := range p {
							props[pk] = pv
						}
					}
				case "required":
					if r, ok := v.([]any); ok {
						required = append(required, r...)
					}
				default:
					if _, have := merged[k]; !have {
						merged[k] = v
					}
				}
			}
		}
		if len(props) > 0 {
			merged["properties"] = props
		}
		if len(required) > 0 {
			merged["required"] = required
		}
		s = merged
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		branches, ok := s[key].([]any)
		if !ok {
			continue
		}
		for _, b := range branches {
			m, _ := b.(map[string]any)
			m = sc.resolve(m)
			if m == nil || m["type"] == "null" {
				continue
			}
			merged := map[string]any{}
			for k, v := range s {
				if k != key {
					merged[k] = v
				}
			}
			for k, v := range m {
				merged[k] = v
			}
			return merged
		}
	}
	return s
}

// pointer resolves a local reference such as "#/$defs/Input".
func (sc *synthContext) pointer(ref string) map[string]any {
	if !strings.HasPrefix(ref, "#") {
		return nil
	}
	var cur any = sc.root
	for _, part := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(ref, "#"), "/"), "/") {
		if part == "" {
			continue
		}
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

func schemaType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if str, ok := x.(string); ok && str != "null" {
				return str
			}
		}
		return "null"
	}
	switch {
	case s["properties"] != nil:
		return "object"
	case s["items"] != nil:
		return "array"
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return jsonTypeOf(e[0])
	}
	return "string"
}

func jsonTypeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "null"
}

// value synthesizes a value for schema s of the property called name.
func (sc *synthContext) value(s map[string]any, name string, depth int) any {
	s = sc.resolve(s)
	if s == nil || depth > 12 {
		return nil
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return sc.pickEnum(e, name)
	}
	switch schemaType(s) {
	case "object":
		return sc.object(s, depth)
	case "array":
		return sc.array(s, name, depth)
	case "integer":
		return sc.number(s, name, true)
	case "number":
		return sc.number(s, name, false)
	case "boolean":
		return sc.boolean(s, name)
	case "null":
		return nil
	default:
		return sc.str(s, name)
	}
}

func (sc *synthContext) object(s map[string]any, depth int) any {
	out := map[string]any{}
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	if r, ok := s["required"].([]any); ok {
		for _, x := range r {
			if n, ok := x.(string); ok {
				required[n] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ps, _ := props[n].(map[string]any)
		if !required[n] && !sc.output && !sc.knows(n) {
			continue
		}
		if v := sc.value(ps, n, depth+1); v != nil || required[n] {
			out[n] = v
		}
	}
	return out
}

func (sc *synthContext) array(s map[string]any, name string, depth int) any {
	items, _ := s["items"].(map[string]any)
	minItems := intKeyword(s, "minItems", 0)
	maxItems := intKeyword(s, "maxItems", 1<<30)
	n := max(minItems, 1)
	var issues []issue
	if isListOfIssues(name) {
		issues = findIssues(sc.conv)
		n = max(minItems, len(issues))
	}
	n = min(n, maxItems)
	out := make([]any, 0, n)
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		saved := sc.item
		if i < len(issues) {
			sc.item = &issues[i]
		}
		v := sc.value(items, singular(name), depth+1)
		sc.item = saved
		if unique, _ := s["uniqueItems"].(bool); unique {
			key, _ := json.Marshal(v)
			if seen[string(key)] {
				if len(out) >= minItems {
					break
				}
				if str, ok := v.(string); ok {
					v = fmt.Sprintf("%s %d", str, i+1)
				}
			}
			seen[string(key)] = true
		}
		out = append(out, v)
	}
	return out
}

func singular(name string) string {
	switch {
	case strings.HasSuffix(name, "ies"):
		return strings.TrimSuffix(name, "ies") + "y"
	case strings.HasSuffix(name, "ses"), strings.HasSuffix(name, "xes"):
		return strings.TrimSuffix(name, "es")
	case strings.HasSuffix(name, "s") && !strings.HasSuffix(name, "ss"):
		return strings.TrimSuffix(name, "s")
	}
	return name
}

func intKeyword(s map[string]any, key string, def int) int {
	if f, ok := s[key].(float64); ok {
		return int(f)
	}
	return def
}

// knows reports whether the conversation holds a value for an optional
// property, which the model then fills.
func (sc *synthContext) knows(name string) bool {
	n := strings.ToLower(name)
	f := sc.conv.facts
	if _, ok := f.kv[n]; ok && (isIdentifier(name) || n == "name") {
		return true
	}
	switch {
	case strings.Contains(n, "email"):
		return len(f.emails) > 0
	case strings.Contains(n, "ticket"):
		return len(f.tickets) > 0
	case strings.Contains(n, "customer"):
		return len(f.customers) > 0
	case strings.Contains(n, "order"):
		return len(f.orders) > 0
	case n == "currency":
		return len(f.amounts) > 0
	case sc.class == classUpdate && hasWord(n, "note", "notes", "comment", "resolution"):
		return true
	}
	return false
}

// isIdentifier reports whether a property name ends in the word "id"
// (id, customer_id, orderId).
func isIdentifier(name string) bool {
	w := words(name)
	return len(w) > 0 && w[len(w)-1] == "id"
}

// has reports whether any of the name's words is in set.
func hasWord(name string, set ...string) bool {
	for _, w := range words(name) {
		for _, s := range set {
			if w == s {
				return true
			}
		}
	}
	return false
}

func (sc *synthContext) pickEnum(values []any, name string) any {
	var strs []string
	for _, v := range values {
		if s, ok := v.(string); ok {
			strs = append(strs, s)
		}
	}
	if len(strs) == 0 {
		return values[0]
	}
	lower := strings.ToLower(name)
	find := func(prefs ...string) (string, bool) {
		for _, p := range prefs {
			for _, s := range strs {
				if strings.EqualFold(s, p) {
					return s, true
				}
			}
		}
		return "", false
	}
	switch {
	case sc.item != nil && hasWord(lower, "severity", "risk", "level"):
		if s, ok := find(sc.item.severity); ok {
			return s
		}
	case hasWord(lower, "risk"):
		if s, ok := find(riskLevel(findIssues(sc.conv))); ok {
			return s
		}
	case hasWord(lower, "status", "state") && (sc.class == classUpdate || sc.output):
		if s, ok := find("resolved", "solved", "closed", "done", "answered", "completed", "pending"); ok {
			return s
		}
	case hasWord(lower, "currency"):
		if amts := sc.conv.facts.amounts; len(amts) > 0 {
			if s, ok := find(amts[0].Currency); ok {
				return s
			}
		}
	case hasWord(lower, "recommendation", "decision", "verdict"):
		pref := []string{"approve", "approved", "accept", "yes"}
		if riskLevel(findIssues(sc.conv)) != "low" {
			pref = []string{"escalate", "review", "revise", "negotiate", "needs_review", "reject"}
		}
		if s, ok := find(pref...); ok {
			return s
		}
	}
	q := strings.ToLower(sc.conv.question)
	for _, s := range strs {
		if len(s) > 2 && containsWord(q, strings.ToLower(s)) {
			return s
		}
	}
	return values[0]
}

func (sc *synthContext) boolean(s map[string]any, name string) any {
	if d, ok := s["default"].(bool); ok {
		return d
	}
	if hasWord(name, "approved", "approve", "accept", "accepted", "ok") && sc.output {
		return riskLevel(findIssues(sc.conv)) == "low"
	}
	return hasWord(name, "notify", "send", "confirm", "confirmation", "receipt")
}

func (sc *synthContext) number(s map[string]any, name string, integer bool) any {
	n := strings.ToLower(name)
	desc := strings.ToLower(fmt.Sprint(s["description"]))
	f := sc.conv.facts
	var v float64
	var found bool
	switch {
	case hasWord(n, "amount", "total", "price", "cost", "sum", "value", "cents", "fee"):
		if len(f.amounts) > 0 {
			cents := f.amounts[0].Cents
			if strings.Contains(n, "cents") || strings.Contains(desc, "cent") || strings.Contains(desc, "smallest currency unit") || strings.Contains(desc, "minor unit") {
				v = float64(cents)
			} else if integer {
				v = math.Round(float64(cents) / 100)
			} else {
				v = float64(cents) / 100
			}
			found = true
		}
	case hasWord(n, "limit", "k", "top", "max", "results", "count", "size"):
		v, found = 3, true
	case hasWord(n, "quantity", "qty", "seats", "units"):
		v, found = 1, true
	}
	if !found {
		if x, ok := f.num(n); ok {
			v, found = x, true
		}
	}
	if !found {
		if d, ok := s["default"].(float64); ok {
			v, found = d, true
		} else if ex, ok := s["examples"].([]any); ok && len(ex) > 0 {
			v, found = toFloat(ex[0])
		}
	}
	if !found {
		v = 1
	}
	if lo, ok := s["minimum"].(float64); ok && v < lo {
		v = lo
	}
	if lo, ok := s["exclusiveMinimum"].(float64); ok && v <= lo {
		v = lo + 1
		if !integer {
			v = lo + 0.01
		}
	}
	if hi, ok := s["maximum"].(float64); ok && v > hi {
		v = hi
	}
	if hi, ok := s["exclusiveMaximum"].(float64); ok && v >= hi {
		v = hi - 1
		if !integer {
			v = hi - 0.01
		}
	}
	if m, ok := s["multipleOf"].(float64); ok && m > 0 {
		v = math.Ceil(v/m) * m
	}
	if integer {
		v = math.Round(v)
		return int64(v)
	}
	return v
}

func toFloat(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

// str synthesizes a string and makes it fit the schema's format, pattern
// and length.
func (sc *synthContext) str(s map[string]any, name string) any {
	format, _ := s["format"].(string)
	cand, ok := sc.stringFor(s, name, format)
	if ok && fits(cand, s) {
		return cand
	}
	// Other candidates: the default, examples, a value found in the
	// conversation that matches the pattern, a value of the format.
	var others []string
	if d, ok := s["default"].(string); ok {
		others = append(others, d)
	}
	if ex, ok := s["examples"].([]any); ok {
		for _, e := range ex {
			if str, ok := e.(string); ok {
				others = append(others, str)
			}
		}
	}
	if p, ok := s["pattern"].(string); ok {
		inner := strings.TrimSuffix(strings.TrimPrefix(p, "^"), "$")
		if re, err := regexp.Compile(inner); err == nil {
			others = append(others, re.FindAllString(sc.conv.facts.text, 20)...)
		}
	}
	if format != "" {
		others = append(others, formatExample(format, sc))
	}
	for _, o := range others {
		if fits(o, s) {
			return o
		}
	}
	if fits(cand, s) {
		return cand
	}
	// Fit the length at least.
	if maxLen := intKeyword(s, "maxLength", -1); maxLen >= 0 {
		cand = truncate(cand, maxLen)
	}
	if minLen := intKeyword(s, "minLength", 0); utf8.RuneCountInString(cand) < minLen {
		cand += strings.Repeat(".", minLen-utf8.RuneCountInString(cand))
	}
	return cand
}

var (
	reFormatDate     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	reFormatDateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)
	reFormatURI      = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:\S+$`)
	reFormatUUID     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// fits reports whether v meets the schema's pattern, length and format.
func fits(v string, s map[string]any) bool {
	n := utf8.RuneCountInString(v)
	if n < intKeyword(s, "minLength", 0) || n > intKeyword(s, "maxLength", 1<<30) {
		return false
	}
	if p, ok := s["pattern"].(string); ok {
		re, err := regexp.Compile(p)
		if err == nil && !re.MatchString(v) {
			return false
		}
	}
	switch s["format"] {
	case "email":
		return reEmail.FindString(v) == v && v != ""
	case "date":
		return reFormatDate.MatchString(v)
	case "date-time":
		return reFormatDateTime.MatchString(v)
	case "uri", "url":
		return reFormatURI.MatchString(v)
	case "uuid":
		return reFormatUUID.MatchString(v)
	}
	return true
}

func formatExample(format string, sc *synthContext) string {
	f := sc.conv.facts
	switch format {
	case "email":
		if len(f.emails) > 0 {
			return f.emails[0]
		}
		return "customer@example.com"
	case "date":
		if len(f.dates) > 0 {
			return f.dates[0]
		}
		return "2025-01-01"
	case "date-time":
		if len(f.dates) > 0 {
			return f.dates[0] + "T00:00:00Z"
		}
		return "2025-01-01T00:00:00Z"
	case "time":
		return "09:00:00Z"
	case "uri", "url":
		if len(f.urls) > 0 {
			return f.urls[0]
		}
		return "https://example.com/"
	case "uuid":
		h := sha256.Sum256([]byte(f.text))
		x := hex.EncodeToString(h[:16])
		return x[:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
	case "hostname":
		return "example.com"
	case "ipv4":
		return "192.0.2.1"
	}
	return ""
}

// stringFor picks a string for a property by its name and the facts.
func (sc *synthContext) stringFor(s map[string]any, name, format string) (string, bool) {
	v := sc.stringGuess(s, name, format)
	if v != "" {
		return v, true
	}
	return sc.stringFallback(name), false
}

// stringGuess returns a string for a property from its name and the
// facts, or "" when nothing fits.
func (sc *synthContext) stringGuess(s map[string]any, name, format string) string {
	n := strings.ToLower(name)
	f := sc.conv.facts
	conv := sc.conv
	toolIs := func(ws ...string) bool { return hasWord(sc.tool.Name, ws...) }
	first := func(list []string) (string, bool) {
		if len(list) > 0 {
			return list[0], true
		}
		return "", false
	}
	if sc.item != nil {
		switch {
		case hasWord(n, "clause", "text", "quote", "excerpt", "issue", "finding", "risk", "item", "point"):
			return sc.item.sentence
		case hasWord(n, "note", "comment", "explanation", "reason", "description", "concern", "why"):
			return sc.item.note
		case hasWord(n, "topic", "title", "category", "type", "kind", "name", "label"):
			return sc.item.topic
		case hasWord(n, "severity", "level"):
			return sc.item.severity
		case hasWord(n, "recommendation", "suggestion", "fix", "action", "mitigation", "change"):
			return "Negotiate or narrow: " + sc.item.topic + "."
		}
	}
	switch {
	case format == "email" || strings.Contains(n, "email") || (n == "to" || n == "recipient" || n == "cc") && sc.class == classSend:
		if n == "from" || n == "sender" || strings.HasPrefix(n, "from") {
			if v, ok := f.str(n); ok {
				return v
			}
			return "agent@example.com"
		}
		if v, ok := f.str("email", n); ok && reEmail.MatchString(v) {
			return v
		}
		if v, ok := first(f.emails); ok {
			return v
		}
		return "customer@example.com"
	case n == "from" || n == "sender":
		return "Keel agent"
	case strings.Contains(n, "ticket") || n == "id" && toolIs("ticket", "tickets", "case", "issue"):
		if v, ok := first(f.tickets); ok {
			return v
		}
	case strings.Contains(n, "customer") && !strings.Contains(n, "name") || n == "id" && toolIs("customer", "crm", "account", "contact", "user"):
		if v, ok := first(f.customers); ok {
			return v
		}
		if v, ok := f.str("customer_id", "customerid", "id"); ok {
			return v
		}
		if v, ok := first(f.emails); ok && strings.Contains(n, "customer") && !isIdentifier(name) {
			return v
		}
	case strings.Contains(n, "order"):
		if v, ok := first(f.orders); ok {
			return v
		}
	case n == "currency":
		if len(f.amounts) > 0 {
			return strings.ToLower(f.amounts[0].Currency)
		}
		return "usd"
	case hasWord(n, "idempotency", "dedupe", "dedup"):
		h := sha256.Sum256([]byte(conv.question + "\x00" + sc.tool.Name))
		return "offline-" + hex.EncodeToString(h[:8])
	case hasWord(n, "query", "q", "search", "keywords", "terms", "term", "question", "prompt", "topic"):
		if toolIs("crm", "customer", "customers", "account", "contact", "contacts", "user", "users") {
			if v, ok := first(f.customers); ok {
				return v
			}
			if v, ok := first(f.emails); ok {
				return v
			}
		}
		return searchQuery(conv.question)
	case hasWord(n, "task", "request", "input", "instructions", "instruction", "brief", "goal", "assignment"):
		return sc.delegateTask()
	case hasWord(n, "document", "contract", "agreement", "clause", "clauses", "draft_text", "source"):
		return conv.question
	case hasWord(n, "subject", "title", "headline"):
		if sc.class == classSend || sc.output && hasWord(n, "subject") {
			return "Re: " + headline(conv.question, 60)
		}
		return headline(conv.question, 80)
	case hasWord(n, "body", "message", "content", "html", "text") && (sc.class == classSend || sc.output):
		return emailBody(conv)
	case hasWord(n, "memo"):
		return memo(conv)
	case hasWord(n, "status", "state"):
		if sc.class == classUpdate {
			return "resolved"
		}
	case hasWord(n, "name") && !hasWord(n, "tool", "file", "product", "company"):
		if v, ok := f.str(n, "name", "customer_name", "full_name"); ok {
			return v
		}
		return nameFromEmail(f)
	case hasWord(n, "company", "organization", "organisation", "account"):
		if v, ok := f.str(n, "company", "organization"); ok {
			return v
		}
	case hasWord(n, "language", "lang", "locale"):
		return "en"
	case hasWord(n, "phone", "tel", "mobile"):
		if v, ok := f.str(n, "phone"); ok {
			return v
		}
		return "+1 555 0100"
	case hasWord(n, "url", "link", "uri", "href") || format == "uri":
		if v, ok := first(f.urls); ok {
			return v
		}
		return "https://example.com/"
	case hasWord(n, "date", "day", "deadline", "due") || format == "date":
		if v, ok := first(f.dates); ok {
			return v
		}
	case hasWord(n, "summary", "answer", "reply", "response", "result", "conclusion", "overview"):
		return Label + " " + summaryLine(conv)
	case hasWord(n, "recommendation", "next", "action", "advice"):
		return Label + " " + recommendation(conv)
	case (sc.class == classDelegate || sc.class == classHandoff) && !sc.output && hasWord(n, "message", "text", "content", "query"):
		return sc.delegateTask()
	case hasWord(n, "note", "notes", "comment", "comments", "reason", "resolution", "description", "details", "explanation", "justification", "rationale", "body", "message", "content", "text"):
		return noteFor(sc)
	}
	if v, ok := f.str(n); ok {
		return v
	}
	if isIdentifier(name) {
		if v, ok := first(f.ids); ok {
			return v
		}
	}
	return ""
}

// stringFallback is the text of a property nothing is known about.
func (sc *synthContext) stringFallback(name string) string {
	if sc.output {
		return Label + " " + strings.ReplaceAll(strings.ToLower(name), "_", " ") + " for: " + headline(sc.conv.question, 80)
	}
	return headline(sc.conv.question, 120)
}

var reQueryPrefix = regexp.MustCompile(`^\W*(?i:ticket)?\W*(?i:from)?\W*`)

// searchQuery turns a question into a search query: its sentences
// without greetings, emails and IDs, dropping those left with fewer than
// three words, at most 200 characters.
func searchQuery(q string) string {
	var parts []string
	for _, sent := range reSentence.FindAllString(q, -1) {
		sent = reEmail.ReplaceAllString(sent, "")
		sent = reID.ReplaceAllString(sent, "")
		sent = reQueryPrefix.ReplaceAllString(sent, "")
		for _, g := range []string{"hi", "hello", "hey", "dear support", "please", "this is", "i am", "i'm"} {
			if low := strings.ToLower(sent); strings.HasPrefix(low, g+",") || strings.HasPrefix(low, g+" ") {
				sent = strings.TrimLeft(sent[len(g):], ", ")
			}
		}
		sent = strings.Join(strings.Fields(sent), " ")
		if len(strings.FieldsFunc(sent, func(r rune) bool { return !unicode.IsLetter(r) })) >= 3 {
			parts = append(parts, sent)
		}
	}
	if len(parts) == 0 {
		if t := strings.Join(strings.Fields(q), " "); t != "" {
			return truncate(t, 200)
		}
		return "help"
	}
	return truncate(strings.Join(parts, " "), 200)
}

func nameFromEmail(f *facts) string {
	if len(f.emails) == 0 {
		return "Customer"
	}
	local, _, _ := strings.Cut(f.emails[0], "@")
	local, _, _ = strings.Cut(local, ".")
	local, _, _ = strings.Cut(local, "+")
	if local == "" {
		return "Customer"
	}
	return strings.ToUpper(local[:1]) + local[1:]
}

// delegateTask is the task handed to a sub-agent tool.
func (sc *synthContext) delegateTask() string {
	q := strings.TrimSpace(sc.conv.question)
	if q == "" {
		q = headline(sc.conv.system, 200)
	}
	return q
}
