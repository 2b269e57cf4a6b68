package recipe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
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
	root, ok := c.parse(data)
	switch {
	case !ok:
		return d
	case root == nil:
		c.add("", "empty document: expected apiVersion: %s and kind: %s", APIVersion, kind)
		return d
	case root.Kind != yaml.MappingNode:
		c.add("", "a %s must be a mapping of fields, found %s", kind, kindName(root))
		return d
	}
	if !checkVersion(c, root, kind) {
		return d
	}
	d.decoded = c.decode(root, v)
	return d
}

// parse reads the YAML document in data and returns its top node, or nil for an empty
// document. A syntax error is recorded where the parser found it, and so is a second document
// (text.go).
func (c *collector) parse(data []byte) (*yaml.Node, bool) {
	var doc yaml.Node
	l, err := yaml.NewLoader(bytes.NewReader(data))
	if err == nil {
		err = l.Load(&doc)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.yamlError(err, data)
		return nil, false
	}
	if err == nil && !c.single(l, data) {
		return nil, false
	}
	root := top(&doc)
	if root != nil {
		c.pos[""] = pos{root.Line, root.Column}
	}
	return root, true
}

// top is a document's content, or nil when it has none.
func top(doc *yaml.Node) *yaml.Node {
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		return nil
	}
	return doc.Content[0]
}

// yamlError records a syntax error in data at the line and column the parser gives, or, for
// a character the parser refuses without saying where, at that character.
func (c *collector) yamlError(err error, data []byte) {
	at, msg := pos{1, 1}, strings.TrimPrefix(err.Error(), "yaml: ")
	var le *yaml.LoadError
	if errors.As(err, &le) {
		msg = le.Message
		if le.Mark.Line > 0 {
			at = markPos(le.Mark)
		} else if p, what, ok := badCharacter(data); ok {
			at, msg = p, what
		}
	}
	c.addAt(at, "", "invalid YAML: %s", msg)
}

func markPos(m yaml.Mark) pos { return pos{m.Line, max(m.Column, 1)} }

// decode decodes root into v (a pointer) with the YAML library in its strict mode: it finds
// unknown fields, keys given twice and values of the wrong type, each at its line and column,
// and kiln says which field each concerns and how (sites). It returns whether v holds the
// document: not when a key is given twice (neither value can be trusted) or the decoder
// stopped (an alias expanded past the library's limits).
func (c *collector) decode(root *yaml.Node, v any) bool {
	s := locate(c, root, reflect.TypeOf(v).Elem())
	err := root.Load(v, yaml.WithKnownFields(), yaml.WithUniqueKeys())
	var all *yaml.LoadErrors
	var one *yaml.LoadError
	switch {
	case err == nil:
		return true
	case errors.As(err, &all):
		seen := map[FieldError]bool{}
		for _, e := range all.Errors {
			s.explain(c, e, seen)
		}
		return !c.ambiguous
	case errors.As(err, &one):
		c.addAt(markPos(one.Mark), "", "%s", one.Message)
	default:
		c.add("", "decoding: %v", err)
	}
	return false
}

// site is a node of the document with the field path it stands for and the Go type it
// decodes into (a key's is the type of the mapping it is in).
type site struct {
	path    string
	typ     reflect.Type
	node    *yaml.Node
	problem string // a key's: unknown, or given twice
}

// sites index a document's nodes by where they stand, keys apart from values (a block
// mapping starts where its first key does), so that the decoder's located errors can be
// worded by field. A node that aliases reach from several fields keeps the first.
type sites struct {
	keys, values map[pos]site
	left         int // visits the walk may still make
}

// walkLimit bounds the fields the walk visits, aliases followed: far more than a recipe has,
// far fewer than a document of nested aliases expands to.
const walkLimit = 50000

// locate walks the document beside the Go type t, recording where each field stands (for
// the checks made after decoding) and what it is (sites), and checks what the decoder lets
// pass: a string field must hold a string (the decoder would take 0644 or on as text) and
// an integer must fit 32 bits. It follows aliases as the decoder does, but for walkLimit
// fields at most: a document whose aliases expand further is refused.
func locate(c *collector, root *yaml.Node, t reflect.Type) *sites {
	s := &sites{keys: map[pos]site{}, values: map[pos]site{}, left: walkLimit}
	s.walk(c, root, t, "")
	if s.left < 0 {
		c.add("", "aliases expand the document past %d values", walkLimit)
	}
	return s
}

func (s *sites) walk(c *collector, n *yaml.Node, t reflect.Type, path string) {
	if s.left--; s.left < 0 {
		return
	}
	at := pos{n.Line, n.Column}
	c.pos[path] = at
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias // the decoder's errors are located at the node an alias names
	}
	note(s.values, pos{n.Line, n.Column}, site{path: path, typ: t, node: n})
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
	case n.Kind == yaml.MappingNode && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map || t.Kind() == reflect.Interface):
		s.mapping(c, n, t, path)
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Interface) && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			s.walk(c, item, elemType(t), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.String && t != scalarType && n.Kind == yaml.ScalarNode && n.Tag != "!!str":
		msg, _ := mismatch(t, n)
		c.addAt(at, path, "%s", msg)
	case t.Kind() == reflect.Int && n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		if _, err := strconv.ParseInt(n.Value, 0, 32); err != nil {
			c.addAt(at, path, "integer %s out of range", n.Value)
		}
	}
}

// mapping walks the entries of a struct's or a map's mapping. A struct's fields are located
// by their values, a map's entries by their keys. The entries of a free-form document (a
// passthrough such as kubernetes.clusterConfiguration: values of any type) are named and
// located as fields are, so that checks of the document can point into it.
func (s *sites) mapping(c *collector, n *yaml.Node, t reflect.Type, path string) {
	var fields map[string]reflect.StructField
	if t.Kind() == reflect.Struct {
		fields = structFields(t)
	}
	freeForm := t.Kind() == reflect.Interface || t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Interface
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		kp := pos{key.Line, key.Column}
		k := site{path: fmt.Sprintf("%s[%q]", path, key.Value), typ: t, node: key}
		var elem reflect.Type
		if freeForm {
			k.path, elem = joinPath(path, key.Value), elemType(t)
		} else if fields == nil {
			elem = t.Elem()
		} else if f, known := fields[key.Value]; known {
			k.path, elem = joinPath(path, key.Value), f.Type
		} else {
			k.path, k.problem = joinPath(path, key.Value), "unknown"
			c.pos[k.path] = kp
		}
		if k.problem == "" && seen[key.Value] {
			k.problem = "twice"
		}
		seen[key.Value] = true
		note(s.keys, kp, k)
		if k.problem == "" {
			s.walk(c, val, elem, k.path)
			if fields == nil && !freeForm {
				c.pos[k.path] = kp
			}
		}
	}
}

// elemType is the type of the values in a map or slice type t; an interface type's values
// (a free-form document's) are of that interface type again.
func elemType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Interface {
		return t
	}
	return t.Elem()
}

// note indexes s at p unless a site is there already.
func note(m map[pos]site, p pos, s site) {
	if _, ok := m[p]; !ok {
		m[p] = s
	}
}

// explain records one of the decoder's errors, worded by the field it concerns; one that no
// field explains (in a part of the document the walk did not reach) keeps the decoder's words.
func (s *sites) explain(c *collector, e *yaml.LoadError, seen map[FieldError]bool) {
	at := markPos(e.Mark)
	path, msg := "", e.Message
	if k, ok := s.keys[at]; ok && k.problem != "" {
		path = k.path
		switch {
		case k.problem == "unknown":
			msg = "unknown field" + suggest(k.node.Value, structFields(k.typ))
		case k.typ.Kind() == reflect.Map:
			msg, c.ambiguous = "key given twice", true
		default:
			msg, c.ambiguous = "field given twice", true
		}
	} else if v, ok := s.values[at]; ok {
		path = v.path
		if m, same := mismatch(v.typ, v.node); !same { // else the node is used as another type too
			msg = m
		}
	}
	fe := FieldError{File: c.file, Line: at.line, Col: at.col, Path: path, Msg: msg}
	if !seen[fe] { // an alias repeats the errors of what it names
		seen[fe] = true
		c.errs = append(c.errs, fe)
	}
}

var scalarType = reflect.TypeOf(Scalar(""))

// mismatch says what a value of type t must be, and what n is instead; same is set when n is
// of the kind t wants (a mapping, a list).
func mismatch(t reflect.Type, n *yaml.Node) (msg string, same bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want, hint := "a "+t.String(), ""
	switch {
	case t == scalarType:
		want = "a single value"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		want = "a mapping"
	case t.Kind() == reflect.Slice:
		want = "a list"
	case t.Kind() == reflect.Int:
		want = "an integer"
	case t.Kind() == reflect.String:
		want, hint = "a string", quoteHint(n)
	}
	found := kindName(n)
	return fmt.Sprintf("must be %s, found %s%s", want, found, hint), found == want
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
		if v != nil && v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
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

// structFields maps the YAML names of a struct's fields to the fields.
func structFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fields[yamlName(f)] = f
	}
	return fields
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

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
