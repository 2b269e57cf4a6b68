package nodeconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/coreos/go-semver/semver"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	vpath "github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
)

// This file words the problems Ignition leaves in Go's terms or without a place: JSON syntax
// and type errors (encoding/json's, naming Go struct fields) and the spec version.

const specs = "kiln reads Ignition spec 3.0.0 to 3.5.0"

// syntaxProblem locates the JSON syntax error in raw.
func syntaxProblem(raw []byte) Problem {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(raw, &v); !errors.As(err, &se) {
		return Problem{Message: "invalid JSON"}
	}
	off := se.Offset - 1 // the byte the parser stopped at
	if se.Offset >= int64(len(raw)) {
		off = int64(len(raw))
	}
	line, col := lineCol(raw, off)
	return Problem{Line: line, Column: col, Message: "invalid JSON: " + se.Error()}
}

// lineCol is the line and byte column (from 1) of raw[off], as Ignition counts them.
func lineCol(raw []byte, off int64) (line, col int64) {
	line, col = 1, 1
	for _, c := range raw[:off] {
		col++
		if c == '\n' {
			line, col = line+1, 1
		}
	}
	return line, col
}

// decodeFailed says whether Ignition's report is its one entry for a config that does not
// decode into its types (placed at the top, worded by encoding/json).
func decodeFailed(r report.Report) bool {
	return len(r.Entries) == 1 && r.Entries[0].Context.Len() == 0 && r.IsFatal()
}

// typeError replaces r's entry for a value of the wrong type with one at the value's field.
func typeError(raw []byte, r *report.Report) {
	var te *json.UnmarshalTypeError
	if err := json.Unmarshal(raw, new(types.Config)); !errors.As(err, &te) {
		return // older specs' types refused it: keep Ignition's words
	}
	*r = report.Report{}
	r.AddOnError(pathAt(raw, te.Offset), fmt.Errorf("want %s, got %s", want(te.Type), got(te.Value)))
}

// pathAt is the path of the value whose first token ends at byte off of raw: where
// encoding/json reports a value of the wrong type.
func pathAt(raw []byte, off int64) vpath.ContextPath {
	type frame struct {
		object, wantKey bool
		key             string
		index           int
	}
	var stack []*frame
	path := func() vpath.ContextPath {
		p := vpath.New("json")
		for _, f := range stack {
			if f.object {
				p = p.Append(f.key)
			} else {
				p = p.Append(f.index)
			}
		}
		return p
	}
	next := func() { // the value in the innermost container is done
		if len(stack) > 0 {
			f := stack[len(stack)-1]
			f.wantKey, f.index = f.object, f.index+1
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return vpath.New("json")
		}
		d, delim := tok.(json.Delim)
		switch {
		case delim && (d == '}' || d == ']'):
			stack = stack[:len(stack)-1]
			next()
			continue
		case len(stack) > 0 && stack[len(stack)-1].wantKey:
			stack[len(stack)-1].key, stack[len(stack)-1].wantKey = tok.(string), false
			continue
		}
		if dec.InputOffset() >= off {
			return path()
		}
		if delim {
			stack = append(stack, &frame{object: d == '{', wantKey: d == '{'})
		} else {
			next()
		}
	}
}

// want names in JSON's terms what a field of type t holds.
func want(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// got names a JSON value as encoding/json describes it ("string", "number 4.5", "bool"): a
// number by its value.
func got(v string) string {
	switch kind, literal, _ := strings.Cut(v, " "); {
	case literal != "":
		return literal
	case kind == "bool":
		return "true or false"
	case kind == "array":
		return "a list"
	case kind == "object":
		return "an object"
	default:
		return "a " + kind
	}
}

// versionError says what is wrong with the config's ignition.version.
func versionError(raw []byte) error {
	var stub struct {
		Ignition struct{ Version string }
	}
	json.Unmarshal(raw, &stub)
	v := stub.Ignition.Version
	switch _, err := semver.NewVersion(v); {
	case v == "":
		return fmt.Errorf("required (%s)", specs)
	case err != nil:
		return fmt.Errorf("%q is not a version (%s)", v, specs)
	}
	return fmt.Errorf("unsupported config version %s (%s)", v, specs)
}
