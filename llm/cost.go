package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
)

// USD is an amount of money in micro-dollars (millionths of a US dollar).
// It is an integer so that totals are exact; in JSON it is that integer.
type USD int64

// Units of USD.
const (
	Microdollar USD = 1
	Cent        USD = 10_000
	Dollar      USD = 1_000_000
)

// ErrInvalidAmount is returned by ParseUSD for text that is not an amount.
var ErrInvalidAmount = errors.New("llm: invalid amount")

// ErrNoPrice is returned by Prices.Cost for a model the table does not list.
var ErrNoPrice = errors.New("llm: no price for model")

// String formats u with six decimals, such as "$0.000150" or "-$1.500000".
func (u USD) String() string {
	sign := ""
	v := uint64(u)
	if u < 0 {
		sign = "-"
		v = uint64(-u) // also right for the most negative value
	}
	return fmt.Sprintf("%s$%d.%06d", sign, v/1_000_000, v%1_000_000)
}

// ParseUSD parses a decimal dollar amount such as "2.50", "$0.075" or "-3",
// with at most six decimals, exactly (no floating point).
func ParseUSD(s string) (USD, error) {
	t := strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(t, "-") {
		neg, t = true, t[1:]
	}
	t = strings.TrimPrefix(t, "$")
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" && frac == "" || len(frac) > 6 || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w: %q", ErrInvalidAmount, s)
	}
	if whole == "" {
		whole = "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<63-1)/int64(Dollar)-1 {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalidAmount, s)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	v := USD(w*int64(Dollar) + f)
	if neg {
		v = -v
	}
	return v, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// decimal formats u as a plain decimal number of dollars without trailing
// zeros ("2.5", "0.075", "10").
func (u USD) decimal() string {
	s := strings.TrimPrefix(u.String(), "$")
	s = strings.Replace(s, "-$", "-", 1)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Price is what a model costs, in USD per million tokens.
//
// In JSON each price is a decimal number of dollars per million tokens
// ({"input": 2.5, "cached_input": 1.25, "output": 10}), read exactly; a
// quoted number ("2.50") is accepted too. When "cached_input" is absent it
// is taken to equal "input".
type Price struct {
	Input       USD
	CachedInput USD
	Output      USD
}

// Cost returns the cost of u at price p: uncached prompt tokens at Input,
// cached prompt tokens at CachedInput, completion tokens at Output,
// rounded to the nearest micro-dollar. Negative counts count as zero and
// cached tokens are capped at the prompt tokens.
func (p Price) Cost(u Usage) USD {
	prompt := max(u.PromptTokens, 0)
	cached := min(max(u.CachedPromptTokens, 0), prompt)
	out := max(u.CompletionTokens, 0)
	sum := new(big.Int)
	term := new(big.Int)
	add := func(tokens int64, price USD) {
		term.Mul(big.NewInt(tokens), big.NewInt(int64(price)))
		sum.Add(sum, term)
	}
	add(prompt-cached, p.Input)
	add(cached, p.CachedInput)
	add(out, p.Output)
	// Round half away from zero: (sum ± 500000) / 1e6.
	half := big.NewInt(500_000)
	if sum.Sign() < 0 {
		half.Neg(half)
	}
	sum.Add(sum, half)
	sum.Quo(sum, big.NewInt(1_000_000))
	if !sum.IsInt64() {
		if sum.Sign() < 0 {
			return USD(-1 << 63)
		}
		return USD(1<<63 - 1)
	}
	return USD(sum.Int64())
}

type priceJSON struct {
	Input       json.RawMessage `json:"input"`
	CachedInput json.RawMessage `json:"cached_input,omitempty"`
	Output      json.RawMessage `json:"output"`
}

// MarshalJSON writes p in dollars per million tokens.
func (p Price) MarshalJSON() ([]byte, error) {
	return json.Marshal(priceJSON{
		Input:       json.RawMessage(p.Input.decimal()),
		CachedInput: json.RawMessage(p.CachedInput.decimal()),
		Output:      json.RawMessage(p.Output.decimal()),
	})
}

// UnmarshalJSON reads p in dollars per million tokens.
func (p *Price) UnmarshalJSON(data []byte) error {
	var raw priceJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("llm: price: %w", err)
	}
	parse := func(field string, r json.RawMessage) (USD, error) {
		if len(r) == 0 || string(r) == "null" {
			return 0, fmt.Errorf("llm: price: %q is missing", field)
		}
		text := string(r)
		if strings.HasPrefix(text, `"`) {
			if err := json.Unmarshal(r, &text); err != nil {
				return 0, fmt.Errorf("llm: price %q: %w", field, err)
			}
		}
		v, err := ParseUSD(text)
		if err != nil {
			return 0, fmt.Errorf("llm: price %q: %w", field, err)
		}
		if v < 0 {
			return 0, fmt.Errorf("llm: price %q: %w: negative", field, ErrInvalidAmount)
		}
		return v, nil
	}
	var q Price
	var err error
	if q.Input, err = parse("input", raw.Input); err != nil {
		return err
	}
	if q.Output, err = parse("output", raw.Output); err != nil {
		return err
	}
	q.CachedInput = q.Input
	if len(raw.CachedInput) > 0 && string(raw.CachedInput) != "null" {
		if q.CachedInput, err = parse("cached_input", raw.CachedInput); err != nil {
			return err
		}
	}
	*p = q
	return nil
}

// Prices maps model names to prices. Build one with DefaultPrices, change
// it with Merge, or read one with ParsePrices or LoadPrices.
type Prices map[string]Price

// usd converts a decimal literal known to be valid.
func usd(s string) USD {
	v, err := ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return v
}

// DefaultPrices returns a new table with OpenAI's published standard prices
// for common models, and "offline" at zero.
func DefaultPrices() Prices {
	p := func(in, cached, out string) Price {
		return Price{Input: usd(in), CachedInput: usd(cached), Output: usd(out)}
	}
	return Prices{
		"gpt-4o":        p("2.50", "1.25", "10.00"),
		"gpt-4o-mini":   p("0.15", "0.075", "0.60"),
		"gpt-4.1":       p("2.00", "0.50", "8.00"),
		"gpt-4.1-mini":  p("0.40", "0.10", "1.60"),
		"gpt-4.1-nano":  p("0.10", "0.025", "0.40"),
		"gpt-5":         p("1.25", "0.125", "10.00"),
		"gpt-5-mini":    p("0.25", "0.025", "2.00"),
		"gpt-5-nano":    p("0.05", "0.005", "0.40"),
		"o1":            p("15.00", "7.50", "60.00"),
		"o3":            p("2.00", "0.50", "8.00"),
		"o3-mini":       p("1.10", "0.55", "4.40"),
		"o4-mini":       p("1.10", "0.275", "4.40"),
		"gpt-3.5-turbo": p("0.50", "0.50", "1.50"),
		"offline":       p("0", "0", "0"),
	}
}

// Merge returns a new table with the prices of p, overridden and extended
// by those of override. Neither p nor override is changed.
func (p Prices) Merge(override Prices) Prices {
	out := make(Prices, len(p)+len(override))
	for k, v := range p {
		out[k] = v
	}
	for k, v := range override {
		out[k] = v
	}
	return out
}

// Lookup finds the price of model: an exact entry, or else the longest
// entry that model extends with a dated or numbered suffix, so that
// "gpt-4o-2024-08-06" is priced as "gpt-4o" (but "gpt-4o-mini" is never
// priced as "gpt-4o"). A provider prefix such as "openai/" is ignored.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	if i := strings.LastIndex(model, "/"); i >= 0 {
		if pr, ok := p[model[i+1:]]; ok {
			return pr, true
		}
		model = model[i+1:]
	}
	best, found := "", false
	for k := range p {
		rest, ok := strings.CutPrefix(model, k+"-")
		if !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
			continue
		}
		if len(k) > len(best) {
			best, found = k, true
		}
	}
	if !found {
		return Price{}, false
	}
	return p[best], true
}

// Cost returns the cost of usage u on model, or an error wrapping
// ErrNoPrice when the table has no price for it.
func (p Prices) Cost(model string, u Usage) (USD, error) {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrNoPrice, model)
	}
	return pr.Cost(u), nil
}

// ParsePrices reads a price table from JSON:
//
//	{"gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10}}
func ParsePrices(data []byte) (Prices, error) {
	var p Prices
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("llm: parse prices: %w", err)
	}
	if p == nil {
		return nil, errors.New("llm: parse prices: not a JSON object")
	}
	return p, nil
}

// LoadPrices reads a price table from a JSON file (see ParsePrices).
func LoadPrices(path string) (Prices, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("llm: load prices: %w", err)
	}
	p, err := ParsePrices(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return p, nil
}
