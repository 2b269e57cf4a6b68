package recipe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Loaded is a recipe with what was learnt while reading it.
type Loaded struct {
	Recipe Recipe
	File   string // the path it was read from
	Dir    string // the directory relative paths in it are resolved against
	SHA256 string // hex digest of the file's bytes
	where  positions
}

// Problem returns a located error about field path, for checks made after loading (for
// example a root filesystem too large for disk.root).
func (l *Loaded) Problem(path, format string, args ...any) Errors {
	c := &collector{file: l.File, pos: l.where}
	c.add(path, format, args...)
	return c.errs
}

// Load reads, strictly decodes and validates the recipe at path. Every problem is returned at
// once as Errors; a read failure is returned as is.
func Load(path string) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading recipe: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("reading recipe: %w", err)
	}
	r, where, errs := Parse(path, data)
	if r != nil {
		errs = append(errs, without(validate(r, path, dir, where), errs)...)
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return &Loaded{Recipe: *r, File: path, Dir: dir, SHA256: sha256Hex(data), where: where}, nil
}

// Parse decodes data strictly. It checks the document's shape against the Go types (unknown
// fields, wrong types, apiVersion and kind) but not the meaning of the values. It also returns
// where each field stands, for later checks to locate their messages.
func Parse(file string, data []byte) (*Recipe, positions, Errors) {
	var r Recipe
	d := Decode(file, data, Kind, &r)
	if !d.decoded {
		return nil, d.pos, d.errs
	}
	return &r, d.pos, d.errs
}

// Document is a kiln YAML document (a recipe, a cluster definition) being read: its problems
// so far, and where each field stands so that later checks can locate theirs.
type Document struct {
	collector
	decoded bool
}

// Add records a problem about the field at path (e.g. nodes[1].address).
func (d *Document) Add(path, format string, args ...any) { d.add(path, format, args...) }

// Err returns every problem recorded, sorted by position, or nil.
func (d *Document) Err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return d.errs.sorted()
}

// Decode strictly decodes a document of kind into v (a pointer to its Go type): every shape
// problem (unknown or misspelt field, wrong type, key given twice, wrong apiVersion or kind) is
// recorded with its line. Fields with shape errors are left at their zero values, so that the
// values' meaning can be checked too and every problem reported at once.
func Decode(file string, data []byte, kind string, v any) *Document {
	d := &Document{collector: collector{file: file, pos: positions{}}}
	c := &d.collector
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErrorLine(err)
		c.errs = append(c.errs, FieldError{File: file, Line: line, Col: 1, Msg: msg})
		return d
	}
	if len(bytes.TrimSpace(data)) == 0 || len(doc.Content) == 0 {
		c.add("", "empty document: expected apiVersion: %s and kind: %s", APIVersion, kind)
		return d
	}
	root := doc.Content[0]
	c.pos[""] = pos{root.Line, root.Column}
	if root.Kind != yaml.MappingNode {
		c.add("", "a %s must be a mapping of fields, found %s", kind, kindName(root))
		return d
	}
	if !checkVersion(c, root, kind) {
		return d
	}
	checkShape(c, root, reflect.TypeOf(v).Elem(), "")
	err := root.Decode(v)
	switch {
	case err != nil && len(c.errs) == 0:
		c.add("", "decoding: %v", err)
	case c.ambiguous: // a key given twice: the decoder trusts neither value
	default:
		d.decoded = true
	}
	return d
}

// without drops the problems in later that concern a field (or a part of one) that earlier
// already reports, so a value of the wrong type is not also called missing.
func without(later, earlier Errors) Errors {
	var keep Errors
	for _, e := range later {
		dup := false
		for _, f := range earlier {
			if e.Path == f.Path || strings.HasPrefix(e.Path, f.Path+".") || strings.HasPrefix(e.Path, f.Path+"[") {
				dup = true
			}
		}
		if !dup {
			keep = append(keep, e)
		}
	}
	return keep
}

// checkVersion requires apiVersion and kind before anything else is read: a document of another
// version would only produce noise about fields.
func checkVersion(c *collector, root *yaml.Node, kind string) bool {
	want := map[string]string{"apiVersion": APIVersion, "kind": kind}
	ok := true
	for _, key := range []string{"apiVersion", "kind"} {
		v := mappingValue(root, key)
		if v == nil {
			c.add(key, "required: %s: %s", key, want[key])
			ok = false
			continue
		}
		c.pos[key] = pos{v.Line, v.Column}
		if v.Value != want[key] {
			c.add(key, "unsupported %s %q; this kiln reads %s", key, v.Value, want[key])
			ok = false
		}
	}
	return ok
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkShape walks the YAML tree alongside the Go type, recording positions and reporting
// unknown or duplicate fields and values of the wrong type.
func checkShape(c *collector, n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c.pos[path] = pos{n.Line, n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(path, "must be a mapping, found %s", kindName(n))
			return
		}
		checkMapping(c, n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(path, "must be a list, found %s", kindName(n))
			return
		}
		for i, item := range n.Content {
			checkShape(c, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Pointer:
		checkShape(c, n, t.Elem(), path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(path, "must be a mapping, found %s", kindName(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := fmt.Sprintf("%s[%q]", path, n.Content[i].Value)
			c.pos[key] = pos{n.Content[i].Line, n.Content[i].Column}
			checkShape(c, n.Content[i+1], t.Elem(), key)
			c.pos[key] = pos{n.Content[i].Line, n.Content[i].Column}
		}
	case reflect.String:
		if t == reflect.TypeOf(Scalar("")) {
			if n.Kind != yaml.ScalarNode {
				c.add(path, "must be a single value, found %s", kindName(n))
			}
			return
		}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			c.add(path, "must be a string, found %s%s", kindName(n), quoteHint(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			c.add(path, "must be an integer, found %s", kindName(n))
		} else if _, err := strconv.ParseInt(n.Value, 0, 32); err != nil {
			c.add(path, "integer %s out of range", n.Value)
		}
	}
}

func checkMapping(c *collector, n *yaml.Node, t reflect.Type, path string) {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fields[yamlName(f)] = f
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		child := joinPath(path, key.Value)
		c.pos[child] = pos{key.Line, key.Column}
		f, ok := fields[key.Value]
		switch {
		case !ok:
			c.add(child, "unknown field%s", suggest(key.Value, fields))
		case seen[key.Value]:
			c.add(child, "field given twice")
			c.ambiguous = true
		default:
			checkShape(c, val, f.Type, child)
		}
		seen[key.Value] = true
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// suggest names the known field closest to an unknown one, if any is close.
func suggest(name string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for k := range fields {
		if d := distance(strings.ToLower(name), strings.ToLower(k)); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			return "integer " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an unexpected node"
}

func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf(" (quote it: \"%s\")", n.Value)
	}
	return ""
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlErrorLine pulls the line number out of a YAML syntax error.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return 1, "invalid YAML: " + msg
	}
	line, _ := strconv.Atoi(m[1])
	msg = strings.TrimSpace(strings.Replace(msg, m[0]+":", "", 1))
	return line, "invalid YAML: " + msg
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
