// Package butane reads a per-node config written as Butane YAML (variants fcos and flatcar, as
// Fedora CoreOS and Flatcar users write them) or as Ignition JSON, and gives Ignition JSON.
// It lives apart from nodeconfig so that the node's init does not carry the translator: nodes
// read Ignition, hosts translate.
package butane

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	bconfig "github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"

	"github.com/kiln-dev/kiln/internal/nodeconfig"
)

// IsIgnition tells Ignition JSON (an object) from Butane YAML.
func IsIgnition(raw []byte) bool { return bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) }

// Load returns the config in raw as parsed Ignition JSON and its parsed form, checked with the
// rules a node applies. Butane's errors are located in the YAML; problems found in the
// translated Ignition are named by their JSON path.
func Load(file string, raw []byte) ([]byte, nodeconfig.Config, error) {
	ign := raw
	if !IsIgnition(raw) {
		var err error
		if ign, err = translate(file, raw); err != nil {
			return nil, nodeconfig.Config{}, err
		}
	}
	cfg, err := nodeconfig.Parse(file, ign)
	if e, ok := err.(*nodeconfig.Error); ok && !IsIgnition(raw) {
		for i := range e.Problems {
			e.Problems[i].Line, e.Problems[i].Column = 0, 0 // lines of the generated JSON
			e.Problems[i].Message += " (in the Ignition translated from Butane)"
		}
	}
	return ign, cfg, err
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

func translate(file string, raw []byte) ([]byte, error) {
	out, rpt, err := bconfig.TranslateBytes(raw, common.TranslateBytesOptions{})
	probs := nodeconfig.Problems(rpt)
	if err != nil && len(probs) == 0 {
		// YAML type errors come as text: "yaml: unmarshal errors:\n  line 6: cannot …"
		for _, m := range yamlLine.FindAllStringSubmatch(err.Error(), -1) {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			probs = append(probs, nodeconfig.Problem{Line: n, Column: 1, Message: m[2]})
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
