package butane

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/coreos/butane/config/common"
	fcos1_0 "github.com/coreos/butane/config/fcos/v1_0"
	fcos1_1 "github.com/coreos/butane/config/fcos/v1_1"
	fcos1_2 "github.com/coreos/butane/config/fcos/v1_2"
	fcos1_3 "github.com/coreos/butane/config/fcos/v1_3"
	fcos1_4 "github.com/coreos/butane/config/fcos/v1_4"
	fcos1_5 "github.com/coreos/butane/config/fcos/v1_5"
	fcos1_6 "github.com/coreos/butane/config/fcos/v1_6"
	fiot1_0 "github.com/coreos/butane/config/fiot/v1_0"
	flatcar1_0 "github.com/coreos/butane/config/flatcar/v1_0"
	flatcar1_1 "github.com/coreos/butane/config/flatcar/v1_1"
	r4e1_0 "github.com/coreos/butane/config/r4e/v1_0"
	r4e1_1 "github.com/coreos/butane/config/r4e/v1_1"
	cutil "github.com/coreos/butane/config/util"
	"github.com/coreos/butane/translate"
	vpath "github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
	"github.com/coreos/vcontext/tree"
	vyaml "github.com/coreos/vcontext/yaml"
	"gopkg.in/yaml.v3"

	"github.com/kiln-dev/kiln/internal/nodeconfig"
)

// translations gives the translation set of a Butane config: which Butane field each field of
// the Ignition it translates to comes from.
type translations func(raw []byte) (translate.TranslationSet, error)

// variants are the Butane variants and versions kiln reads, those that translate to Ignition
// 3.0 to 3.5 (openshift's give MachineConfigs, experimental versions Ignition 3.6).
var variants = map[string]map[string]translations{
	"fcos": {
		"1.0.0": set(fcos1_0.Config.ToIgn3_0Unvalidated), "1.1.0": set(fcos1_1.Config.ToIgn3_1Unvalidated),
		"1.2.0": set(fcos1_2.Config.ToIgn3_2Unvalidated), "1.3.0": set(fcos1_3.Config.ToIgn3_2Unvalidated),
		"1.4.0": set(fcos1_4.Config.ToIgn3_3Unvalidated), "1.5.0": set(fcos1_5.Config.ToIgn3_4Unvalidated),
		"1.6.0": set(fcos1_6.Config.ToIgn3_5Unvalidated),
	},
	"flatcar": {"1.0.0": set(flatcar1_0.Config.ToIgn3_3Unvalidated), "1.1.0": set(flatcar1_1.Config.ToIgn3_4Unvalidated)},
	"fiot":    {"1.0.0": set(fiot1_0.Config.ToIgn3_4Unvalidated)},
	"r4e":     {"1.0.0": set(r4e1_0.Config.ToIgn3_3Unvalidated), "1.1.0": set(r4e1_1.Config.ToIgn3_4Unvalidated)},
}

// set makes the translations of one variant version from its Butane translator, decoding the
// config as Butane does.
func set[C, I any](to func(C, common.TranslateOptions) (I, translate.TranslationSet, report.Report)) translations {
	return func(raw []byte) (translate.TranslationSet, error) {
		var c C
		if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&c); err != nil {
			return translate.TranslationSet{}, err
		}
		_, ts, _ := to(c, common.TranslateOptions{})
		return ts, nil
	}
}

// header is the part of a Butane config that says how to read the rest.
type header struct {
	Variant string `yaml:"variant"`
	Version string `yaml:"version"`
}

// checkVariant requires a variant and version kiln reads, located at the field. A document
// that is not a mapping is left to Butane to report.
func checkVariant(raw []byte) []nodeconfig.Problem {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []nodeconfig.Problem{{Message: "empty Butane config"}}
	}
	var h header
	if yaml.Unmarshal(raw, &h) != nil {
		return nil
	}
	var r report.Report
	versions, known := variants[h.Variant]
	switch _, ok := versions[h.Version]; {
	case ok:
		return nil
	case h.Variant == "":
		r.AddOnError(vpath.New("yaml", "variant"), fmt.Errorf("required: kiln reads the Butane variants %s", names(variants)))
	case !known:
		r.AddOnError(vpath.New("yaml", "variant"), fmt.Errorf("%q: kiln reads the Butane variants %s", h.Variant, names(variants)))
	case h.Version == "":
		r.AddOnError(vpath.New("yaml", "version"), fmt.Errorf("required: kiln reads %s %s", h.Variant, names(versions)))
	default:
		r.AddOnError(vpath.New("yaml", "version"), fmt.Errorf("%s %s is not read by kiln: it reads %s %s", h.Variant, h.Version, h.Variant, names(versions)))
	}
	if t, err := vyaml.UnmarshalToContext(raw); err == nil && t != nil { // nil: only comments
		r.Correlate(t)
	}
	return nodeconfig.Problems(r)
}

// names lists a map's keys: "a, b and c".
func names[V any](m map[string]V) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) == 1 {
		return ks[0]
	}
	return strings.Join(ks[:len(ks)-1], ", ") + " and " + ks[len(ks)-1]
}

// locate places the entries of a report on the Ignition translated from the Butane config raw
// at the Butane fields they come from, as Butane places its own.
func locate(raw []byte, r *report.Report) {
	ts, t, err := sourceOf(raw)
	if err != nil {
		for i := range r.Entries {
			r.Entries[i].Marker = tree.Marker{} // a place in the generated JSON would mislead
			r.Entries[i].Message += " (in the Ignition translated from Butane)"
		}
		return
	}
	*r = cutil.TranslateReportPaths(*r, ts)
	r.Correlate(t)
}

// sourceOf gives the translation set of the Butane config raw and its tree of positions.
func sourceOf(raw []byte) (translate.TranslationSet, tree.Node, error) {
	var h header
	if err := yaml.Unmarshal(raw, &h); err != nil {
		return translate.TranslationSet{}, nil, err
	}
	set, ok := variants[h.Variant][h.Version]
	if !ok {
		return translate.TranslationSet{}, nil, errors.New("no translator")
	}
	ts, err := set(raw)
	if err != nil {
		return ts, nil, err
	}
	t, err := vyaml.UnmarshalToContext(raw)
	if err == nil && t == nil {
		err = errors.New("no YAML document")
	}
	return ts, t, err
}
