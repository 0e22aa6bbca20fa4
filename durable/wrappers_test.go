package durable_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// TestStoreWrappersDefineEveryMethod checks that the engine's store
// wrappers define each method of store.Store themselves. They embed the
// store they wrap, so a method added to the interface and forgotten in a
// wrapper would compile and silently bypass it: payloads written without
// the codec, writes without their failpoints.
// passThrough lists the methods a wrapper leaves to the store it embeds on
// purpose: for the codec, those that carry no payload; for the failpoints,
// the reads.
var passThrough = map[string][]string{
	"codecStore": {"FireTimers", "NextWakeup"},
	"fpStore":    {"ActivityAttempts", "ExpiredActivityTasks", "GetLatestRun", "GetRun", "History", "ListRuns", "NextWakeup"},
}

func TestStoreWrappersDefineEveryMethod(t *testing.T) {
	t.Parallel()
	iface := reflect.TypeFor[store.Store]()
	var want []string
	for i := range iface.NumMethod() {
		if name := iface.Method(i).Name; name != "Close" {
			want = append(want, name)
		}
	}
	for file, recv := range map[string]string{"codecstore.go": "codecStore", "failpoints_on.go": "fpStore"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		var defined []string
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || len(fn.Recv.List) != 1 {
				continue
			}
			if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); ok {
				if id, ok := star.X.(*ast.Ident); ok && id.Name == recv {
					defined = append(defined, fn.Name.Name)
				}
			}
		}
		var missing []string
		for _, name := range want {
			if !slices.Contains(defined, name) {
				missing = append(missing, name)
			}
		}
		require.Equal(t, passThrough[recv], missing, "%s: methods %s does not define", file, recv)
	}
}
