package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/keelhq/keel/"

// allowed maps a package (and, unless a longer entry names them, its
// subpackages) to the Keel packages it may import, each also with its
// subpackages. A package may always import its own subpackages.
var allowed = map[string][]string{
	"durable":              {"internal/failpoint"},
	"llm":                  {},
	"appdb":                {"durable/store"},
	"tools":                {"durable", "llm", "appdb"},
	"hitl":                 {"durable", "appdb", "internal/failpoint"},
	"hitl/hitltools":       {"hitl", "durable", "tools"},
	"billing":              {"durable", "appdb", "internal/failpoint"},
	"billing/billingtools": {"billing", "durable", "tools"},
	"agent":                {"durable", "llm", "tools", "appdb"},
}

func TestDependenciesPointDown(t *testing.T) {
	for _, tags := range []string{"", "failpoints"} {
		out, err := exec.Command("go", "list", "-tags", tags, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
		if err != nil {
			t.Fatalf("go list (tags %q): %v", tags, err)
		}
		checked := 0
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			pkg := strings.TrimPrefix(fields[0], module)
			rule, ok := ruleFor(pkg)
			if !ok {
				continue
			}
			checked++
			for _, imp := range fields[1:] {
				dep, ok := strings.CutPrefix(imp, module)
				if !ok || within(dep, rule.owner) || withinAny(dep, allowed[rule.owner]) {
					continue
				}
				t.Errorf("%s imports %s (tags %q): %s may import only %v and its own subpackages",
					pkg, dep, tags, rule.owner, allowed[rule.owner])
			}
		}
		if checked < len(allowed) {
			t.Fatalf("only %d packages matched the %d rules: is the module path right?", checked, len(allowed))
		}
	}
}

type rule struct{ owner string }

// ruleFor returns the longest entry of allowed that pkg is within.
func ruleFor(pkg string) (rule, bool) {
	owners := make([]string, 0, len(allowed))
	for o := range allowed {
		owners = append(owners, o)
	}
	sort.Slice(owners, func(i, j int) bool { return len(owners[i]) > len(owners[j]) })
	for _, o := range owners {
		if within(pkg, o) {
			return rule{owner: o}, true
		}
	}
	return rule{}, false
}

// within reports whether pkg is p or one of its subpackages.
func within(pkg, p string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }

func withinAny(pkg string, ps []string) bool {
	for _, p := range ps {
		if within(pkg, p) {
			return true
		}
	}
	return false
}
