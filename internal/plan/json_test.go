package plan

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/recipe"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fieldPaths lists every key path of a JSON value: a.b, a[].c, …
func fieldPaths(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			fieldPaths(p, e, out)
		}
	case []any:
		for _, e := range v {
			fieldPaths(prefix+"[]", e, out)
		}
	}
}

// TestPlanJSONFields: the Plan's JSON field names are an interface other tools read; they
// change only deliberately (go test ./internal/plan -update), and every top-level field is
// documented in docs/architecture.md.
func TestPlanJSONFields(t *testing.T) {
	l := loaded(recipe.Disk{})
	l.Recipe.Overlays = []string{"o"}
	l.Recipe.Node.Modules = []string{"dummy"}
	l.Recipe.Kubernetes = &recipe.Kubernetes{Version: "v1.37.1"}
	pin := Pinned{Images: []Input{{Role: "base", Ref: "a/b:1", Digest: "sha256:1", From: "x"}},
		Overlays: []Overlay{{Dir: "o", SHA256: "2"}}, Files: []File{{Path: "/etc/f", Source: "/host/f", SHA256: "3"}}, InitSHA256: "4"}
	raw, err := json.Marshal(mustMake(t, l, pin, "out.raw"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(raw, &v)
	paths := map[string]bool{}
	fieldPaths("", v, paths)
	var got []string
	for p := range paths {
		got = append(got, p)
	}
	sort.Strings(got)
	golden := filepath.Join("testdata", "plan-fields.golden")
	if *update {
		os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(got, "\n") + "\n"; g != string(want) {
		t.Errorf("the Plan's JSON fields changed (go test ./internal/plan -update if on purpose):\n%s\nwant:\n%s", g, want)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if !strings.ContainsAny(p, ".[") && !strings.Contains(string(doc), "`"+p+"`") && !strings.Contains(string(doc), "`"+p+"[]`") {
			t.Errorf("docs/architecture.md does not document the Plan's field %s", p)
		}
	}
}
