// Package butane reads a per-node config written as Butane YAML (variants fcos and flatcar, as
// Fedora CoreOS and Flatcar users write them, and fiot and r4e) or as Ignition JSON, and gives
// Ignition JSON. It lives apart from nodeconfig so that the node's init does not carry the
// translator: nodes read Ignition, hosts translate.
package butane

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	bconfig "github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"
	"github.com/coreos/vcontext/report"

	"github.com/kiln-dev/kiln/internal/nodeconfig"
)

// IsIgnition tells Ignition JSON from Butane YAML: a file named *.ign or *.json is Ignition
// whatever it holds (an empty one is an empty Ignition config, not Butane), as is any other
// that holds a JSON object.
func IsIgnition(file string, raw []byte) bool {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".ign", ".json":
		return true
	}
	return bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{"))
}

// Load returns the config in raw as Ignition JSON and its parsed form, checked with the rules
// a node applies. Every problem is located in the file as written: those found in the
// Ignition translated from Butane at the Butane field they come from.
func Load(file string, raw []byte) ([]byte, nodeconfig.Config, error) {
	if IsIgnition(file, raw) {
		cfg, err := nodeconfig.Parse(file, raw)
		return raw, cfg, err
	}
	ign, err := toIgnition(file, raw)
	if err != nil {
		return nil, nodeconfig.Config{}, err
	}
	cfg, err := nodeconfig.ParseTranslated(file, ign, func(r *report.Report) { locate(raw, r) })
	return ign, cfg, err
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

func toIgnition(file string, raw []byte) ([]byte, error) {
	if probs := checkVariant(raw); len(probs) > 0 {
		return nil, &nodeconfig.Error{File: file, Problems: probs}
	}
	out, rpt, err := bconfig.TranslateBytes(raw, common.TranslateBytesOptions{})
	probs := nodeconfig.Problems(rpt)
	if err != nil && len(probs) == 0 {
		// YAML errors come as text: "yaml: unmarshal errors:\n  line 6: cannot …"
		for _, m := range yamlLine.FindAllStringSubmatch(err.Error(), -1) {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			probs = append(probs, nodeconfig.Problem{Line: n, Column: 1, Message: yamlMessage(m[2])})
		}
		if len(probs) == 0 {
			probs = append(probs, nodeconfig.Problem{Message: "butane: " + strings.TrimSpace(err.Error())})
		}
	}
	if len(probs) > 0 {
		return nil, &nodeconfig.Error{File: file, Problems: probs}
	}
	return out, nil
}

var yamlType = regexp.MustCompile("^cannot unmarshal !!(\\w+) (`.*` )?into (\\S+)$")

// yamlMessage words a YAML decoding error without Go's types: "cannot unmarshal !!str `nope`
// into int" is "want an integer, got "nope"".
func yamlMessage(msg string) string {
	m := yamlType.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	value := strings.TrimSuffix(strings.TrimPrefix(m[2], "`"), "` ")
	got := map[string]string{"map": "a mapping", "seq": "a list", "str": strconv.Quote(value), "null": "nothing"}[m[1]]
	if got == "" {
		got = value
	}
	return "want " + goType(m[3]) + ", got " + got
}

// goType names what a Go type holds in YAML's terms.
func goType(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}
