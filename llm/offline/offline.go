package offline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/keelhq/keel/llm"
)

// Label starts every text the offline model writes.
const Label = "[offline model]"

// DefaultName is the model's name unless Config.Name says otherwise.
const DefaultName = "offline"

// Config configures a Model. Every field is optional.
type Config struct {
	// Name is the model's name, reported in responses and used to look up
	// its price. Default: "offline" (free in llm.DefaultPrices).
	Name string
}

// Model is the offline model. It is safe for concurrent use.
type Model struct {
	name string
}

var _ llm.Model = (*Model)(nil)

// New returns an offline model (cfg may be nil).
func New(cfg *Config) *Model {
	m := &Model{name: DefaultName}
	if cfg != nil && cfg.Name != "" {
		m.name = cfg.Name
	}
	return m
}

// Name returns the model's name.
func (m *Model) Name() string { return m.name }

// Chat answers req by the rules in the package documentation. The same
// request always gets the same response.
func (m *Model) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &llm.Error{Kind: llm.KindCanceled, Message: "offline: " + err.Error(), Err: err}
	}
	conv := readConversation(req)
	resp := &llm.Response{
		ID:      "offline-" + requestHash(req)[:16],
		Model:   m.name,
		Message: llm.Message{Role: llm.RoleAssistant},
	}
	if calls := nextCalls(req, conv); len(calls) > 0 {
		resp.Message.ToolCalls = calls
		resp.FinishReason = llm.FinishToolCalls
	} else if req.ResponseFormat != nil {
		out, err := structured(req, conv)
		if err != nil {
			return nil, err
		}
		resp.Message.Content = out
		resp.FinishReason = llm.FinishStop
	} else {
		resp.Message.Content = answer(conv)
		resp.FinishReason = llm.FinishStop
		if n := req.MaxOutputTokens; n > 0 && llm.EstimateTokens(resp.Message.Content) > int64(n) {
			resp.Message.Content = strings.TrimRight(string([]rune(resp.Message.Content)[:4*n]), " \n")
			resp.FinishReason = llm.FinishLength
		}
	}
	resp.Usage = usage(req, resp.Message)
	return resp, nil
}

func requestHash(req *llm.Request) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Tool classes, in the order they are called.
type class int

const (
	classRead     class = iota // lookups and searches
	classHandoff               // transfers of the conversation to another agent
	classDelegate              // sub-agents, drafting, analysis
	classMoney                 // charges, refunds, invoices
	classSend                  // emails and other messages
	classUpdate                // changes of records: tickets, CRM fields
)

var classWords = map[string]class{}

func init() {
	for c, ws := range map[class]string{
		classRead:     "get lookup look find search fetch read list query retrieve check show view describe browse",
		classHandoff:  "transfer handoff",
		classDelegate: "ask consult delegate review analyze analyse draft compose summarize summarise plan estimate quote calculate assess evaluate research negotiate approve",
		classMoney:    "charge refund bill invoice pay payment capture debit credit",
		classSend:     "send email mail notify message reply sms slack post publish forward",
		classUpdate:   "update set close resolve assign tag escalate create delete remove add change mark cancel open reopen save record log",
	} {
		for _, w := range strings.Fields(ws) {
			classWords[w] = c
		}
	}
}

// readNouns make a tool without a verb in its name a lookup.
var readNouns = map[string]bool{
	"crm": true, "kb": true, "knowledge": true, "docs": true, "faq": true, "status": true, "info": true,
	"details": true, "profile": true, "account": true, "inventory": true, "catalog": true, "history": true,
}

// classify returns a tool's class from the first word of its name that
// names one, else from its description.
func classify(t llm.ToolSpec) class {
	for _, w := range words(t.Name) {
		if c, ok := classWords[w]; ok {
			return c
		}
	}
	for _, w := range words(t.Name) {
		if readNouns[w] {
			return classRead
		}
	}
	for _, w := range words(t.Description) {
		if c, ok := classWords[w]; ok {
			return c
		}
	}
	return classDelegate
}

var (
	moneyWords  = []string{"charge", "refund", "bill", "invoice", "pay", "payment", "fee", "credit"}
	sendWords   = []string{"email", "e-mail", "mail", "reply", "respond", "notify", "send", "message", "follow up", "follow-up", "write to", "contact"}
	updateWords = []string{"update", "close", "resolve", "status", "mark", "escalate"}
)

func mentionsAny(text string, ws []string) bool {
	for _, w := range ws {
		if containsWord(text, w) {
			return true
		}
	}
	return false
}

// relevant reports whether the offline model calls tool t for conv.
func relevant(t llm.ToolSpec, c class, conv *conversation) bool {
	text := conv.requestText()
	if containsWord(text, strings.ToLower(t.Name)) {
		return true
	}
	switch c {
	case classHandoff:
		// Only towards an agent the user's messages point to.
		user := strings.ToLower(conv.userText)
		for _, w := range words(t.Name) {
			if _, verb := classWords[w]; !verb && len(w) > 2 && w != "agent" && containsWord(user, w) {
				return true
			}
		}
		return false
	case classMoney:
		return len(conv.facts.amounts) > 0 && mentionsAny(text, moneyWords)
	case classSend:
		return mentionsAny(text, sendWords)
	case classUpdate:
		if mentionsAny(text, updateWords) {
			return true
		}
		for _, w := range words(t.Name) {
			if _, verb := classWords[w]; !verb && len(w) > 2 && containsWord(text, w) {
				return true
			}
		}
		return false
	}
	return true
}

type plannedTool struct {
	spec  llm.ToolSpec
	class class
	order int
}

// plan returns the relevant tools in the order the offline model calls
// them: by class, then in the order they were offered.
func plan(tools []llm.ToolSpec, conv *conversation) []plannedTool {
	var out []plannedTool
	for i, t := range tools {
		c := classify(t)
		if relevant(t, c, conv) {
			out = append(out, plannedTool{spec: t, class: c, order: i})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].class != out[j].class {
			return out[i].class < out[j].class
		}
		return out[i].order < out[j].order
	})
	return out
}

// nextCalls returns the tool calls of the next reply, or nil when it is
// time to answer.
func nextCalls(req *llm.Request, conv *conversation) []llm.ToolCall {
	if len(req.Tools) == 0 || req.ToolChoice == llm.ToolChoiceNone {
		return nil
	}
	var group []plannedTool
	switch req.ToolChoice {
	case "", llm.ToolChoiceAuto, llm.ToolChoiceRequired:
		for _, p := range plan(req.Tools, conv) {
			if conv.called[p.spec.Name] > 0 {
				continue
			}
			if len(group) > 0 && group[0].class != p.class {
				break
			}
			group = append(group, p)
		}
		if len(group) == 0 && req.ToolChoice == llm.ToolChoiceRequired {
			group = []plannedTool{{spec: req.Tools[0], class: classify(req.Tools[0])}}
		}
	default: // one named tool, called once per turn
		if conv.called[req.ToolChoice] == 0 {
			for _, t := range req.Tools {
				if t.Name == req.ToolChoice {
					group = []plannedTool{{spec: t, class: classify(t)}}
				}
			}
		}
	}
	if len(group) > 1 && req.ParallelToolCalls != nil && !*req.ParallelToolCalls {
		group = group[:1]
	}
	calls := make([]llm.ToolCall, 0, len(group))
	for i, p := range group {
		args := synthesize(p.spec.Parameters, &synthContext{conv: conv, tool: p.spec, class: p.class})
		calls = append(calls, llm.ToolCall{
			ID:        fmt.Sprintf("call_%d_%d", len(req.Messages), i),
			Name:      p.spec.Name,
			Arguments: args,
		})
	}
	return calls
}

// usage counts tokens at four characters a token. Cached prompt tokens
// model a provider's prompt cache: once a prompt reaches 1024 tokens, the
// part that the previous call of the same loop already sent (everything
// before the last assistant message) counts as cached, in steps of 128.
func usage(req *llm.Request, reply llm.Message) llm.Usage {
	var prompt, prefix int64
	for _, t := range req.Tools {
		prompt += llm.EstimateTokens(t.Name) + llm.EstimateTokens(t.Description) + llm.EstimateTokens(string(t.Parameters))
	}
	if f := req.ResponseFormat; f != nil {
		prompt += llm.EstimateTokens(f.Name) + llm.EstimateTokens(string(f.Schema))
	}
	lastAssistant := -1
	for i, m := range req.Messages {
		if m.Role == llm.RoleAssistant {
			lastAssistant = i
		}
	}
	for i, m := range req.Messages {
		if i == lastAssistant {
			prefix = prompt
		}
		prompt += messageTokens(m)
	}
	u := llm.Usage{PromptTokens: prompt, CompletionTokens: messageTokens(reply) - 1}
	if prompt >= 1024 && lastAssistant >= 0 {
		u.CachedPromptTokens = prefix / 128 * 128
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

func messageTokens(m llm.Message) int64 {
	n := 1 + llm.EstimateTokens(m.Content)
	for _, c := range m.ToolCalls {
		n += llm.EstimateTokens(c.Name) + llm.EstimateTokens(string(c.Arguments))
	}
	return n
}
