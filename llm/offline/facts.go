package offline

import (
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/keelhq/keel/llm"
)

// toolResult is one tool message of the current turn.
type toolResult struct {
	Name    string
	CallID  string
	Content string
}

// conversation is what the model read from a request.
type conversation struct {
	system   string // all system messages
	question string // the last user message
	userText string // all user messages
	// turnStart is the index of the last user message (0 without one);
	// the current turn is what follows it.
	turnStart int
	// called counts the tools called in the current turn.
	called  map[string]int
	results []toolResult
	facts   *facts
}

func readConversation(req *llm.Request) *conversation {
	c := &conversation{called: map[string]int{}}
	var sys, users []string
	for i, m := range req.Messages {
		switch m.Role {
		case llm.RoleSystem:
			sys = append(sys, m.Content)
		case llm.RoleUser:
			users = append(users, m.Content)
			c.question = m.Content
			c.turnStart = i
		}
	}
	c.system = strings.Join(sys, "\n")
	c.userText = strings.Join(users, "\n")
	names := map[string]string{} // call ID → tool name
	for _, m := range req.Messages[c.turnStart:] {
		switch m.Role {
		case llm.RoleAssistant:
			for _, tc := range m.ToolCalls {
				c.called[tc.Name]++
				names[tc.ID] = tc.Name
			}
		case llm.RoleTool:
			c.results = append(c.results, toolResult{Name: names[m.ToolCallID], CallID: m.ToolCallID, Content: m.Content})
		}
	}
	// Facts are looked up in order of relevance: the question, this turn's
	// tool results (latest first), earlier user and tool messages (latest
	// first), then the instructions.
	var sources []string
	sources = append(sources, c.question)
	for i := len(c.results) - 1; i >= 0; i-- {
		sources = append(sources, c.results[i].Content)
	}
	for i := c.turnStart - 1; i >= 0; i-- {
		if m := req.Messages[i]; m.Role == llm.RoleUser || m.Role == llm.RoleTool {
			sources = append(sources, m.Content)
		}
	}
	sources = append(sources, c.system)
	c.facts = extractFacts(sources)
	return c
}

// requestText is the text that says what the agent must do: its
// instructions and the user's messages, lower-cased.
func (c *conversation) requestText() string {
	return strings.ToLower(c.system + "\n" + c.userText)
}

// amount is a sum of money found in the text.
type amount struct {
	Cents    int64
	Currency string // ISO code, upper case
}

// facts are the values found in the conversation, each list in order of
// relevance.
type facts struct {
	emails    []string
	tickets   []string
	customers []string
	orders    []string
	ids       []string
	amounts   []amount
	urls      []string
	dates     []string
	// kv maps JSON keys (lower case) found in tool results and messages to
	// their scalar values, in order of relevance.
	kv map[string][]any
	// text is all the sources joined, for pattern searches.
	text string
}

var (
	reEmail    = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	reTicket   = regexp.MustCompile(`\b(?:T|TKT|TICKET)-\d+\b`)
	reCustomer = regexp.MustCompile(`\bcus_[A-Za-z0-9]+\b|\b(?:C|CUS|CUST|CUSTOMER)-\d+\b`)
	reOrder    = regexp.MustCompile(`\b(?:O|ORD|ORDER)-\d+\b`)
	reID       = regexp.MustCompile(`\b[A-Z][A-Z0-9]*-\d+\b|\b[a-z]{2,5}_[A-Za-z0-9]*\d[A-Za-z0-9]*\b`)
	reURL      = regexp.MustCompile(`https?://[^\s"'<>)\]]+`)
	reDate     = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}\b`)
	// Amounts: "$25", "$1,200.50", "25 USD", "€30", "30.00 EUR".
	reAmountPrefix = regexp.MustCompile(`(\$|€|£|\bUSD ?|\bEUR ?|\bGBP ?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\b`)
	reAmountSuffix = regexp.MustCompile(`\b(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))? ?(USD|EUR|GBP|dollars|euros|pounds)\b`)
)

func extractFacts(sources []string) *facts {
	f := &facts{kv: map[string][]any{}}
	for _, s := range sources {
		f.emails = appendNew(f.emails, reEmail.FindAllString(s, -1)...)
		f.tickets = appendNew(f.tickets, reTicket.FindAllString(s, -1)...)
		f.customers = appendNew(f.customers, reCustomer.FindAllString(s, -1)...)
		f.orders = appendNew(f.orders, reOrder.FindAllString(s, -1)...)
		f.ids = appendNew(f.ids, reID.FindAllString(s, -1)...)
		f.urls = appendNew(f.urls, reURL.FindAllString(s, -1)...)
		f.dates = appendNew(f.dates, reDate.FindAllString(s, -1)...)
		f.amounts = append(f.amounts, findAmounts(s)...)
		for _, obj := range jsonValues(s) {
			flatten(obj, f.kv)
		}
	}
	f.text = strings.Join(sources, "\n")
	return f
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		dup := false
		for _, have := range list {
			if have == it {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, it)
		}
	}
	return list
}

func findAmounts(s string) []amount {
	type hit struct {
		pos int
		a   amount
	}
	var hits []hit
	for _, m := range reAmountPrefix.FindAllStringSubmatchIndex(s, -1) {
		sym := strings.TrimSpace(s[m[2]:m[3]])
		frac := ""
		if m[6] >= 0 {
			frac = s[m[6]:m[7]]
		}
		hits = append(hits, hit{m[0], amount{toCents(s[m[4]:m[5]], frac), currencyCode(sym)}})
	}
	for _, m := range reAmountSuffix.FindAllStringSubmatchIndex(s, -1) {
		frac := ""
		if m[4] >= 0 {
			frac = s[m[4]:m[5]]
		}
		hits = append(hits, hit{m[0], amount{toCents(s[m[2]:m[3]], frac), currencyCode(s[m[6]:m[7]])}})
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].pos < hits[j].pos })
	out := make([]amount, len(hits))
	for i, h := range hits {
		out[i] = h.a
	}
	return out
}

func toCents(whole, frac string) int64 {
	w, _ := strconv.ParseInt(strings.ReplaceAll(whole, ",", ""), 10, 64)
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f
}

func currencyCode(sym string) string {
	switch strings.ToLower(sym) {
	case "€", "eur", "euros":
		return "EUR"
	case "£", "gbp", "pounds":
		return "GBP"
	}
	return "USD"
}

// jsonValues returns s decoded when it is JSON, else the JSON objects that
// appear in it (such as a payload pasted in a message).
func jsonValues(s string) []any {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil
	}
	var v any
	if json.Unmarshal([]byte(t), &v) == nil {
		return []any{v}
	}
	var out []any
	for i := 0; i < len(t); i++ {
		if t[i] != '{' {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(t[i:]))
		var obj map[string]any
		if dec.Decode(&obj) == nil {
			out = append(out, obj)
			i += int(dec.InputOffset()) - 1
		}
	}
	return out
}

// flatten records the scalar leaves of v under their keys, depth first in
// key order.
func flatten(v any, kv map[string][]any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch val := x[k].(type) {
			case string, float64, bool:
				lk := strings.ToLower(k)
				kv[lk] = append(kv[lk], val)
			default:
				flatten(val, kv)
			}
		}
	case []any:
		for _, e := range x {
			flatten(e, kv)
		}
	}
}

// str returns the first string fact under any of keys.
func (f *facts) str(keys ...string) (string, bool) {
	for _, k := range keys {
		for _, v := range f.kv[k] {
			if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
				return s, true
			}
		}
	}
	return "", false
}

// num returns the first number fact under any of keys.
func (f *facts) num(keys ...string) (float64, bool) {
	for _, k := range keys {
		for _, v := range f.kv[k] {
			if n, ok := v.(float64); ok {
				return n, true
			}
		}
	}
	return 0, false
}

// words splits a name such as "crmLookup" or "send_email" into lower-case
// words.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	var prev rune
	for _, r := range name {
		switch {
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush()
			cur = append(cur, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			cur = append(cur, r)
		default:
			flush()
		}
		prev = r
	}
	flush()
	return out
}

// headline returns the first line or sentence of s, at most n runes.
func headline(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\n"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return truncate(s, n)
}

// truncate shortens s to at most n runes, ending with "…" when cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// containsWord reports whether text contains w at word boundaries.
func containsWord(text, w string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		okStart := start == 0 || !isWordByte(text[start-1])
		okEnd := end == len(text) || !isWordByte(text[end])
		if okStart && okEnd {
			return true
		}
		i = start + 1
	}
}

func isWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
