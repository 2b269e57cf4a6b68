// Package nodeconfig owns a node's per-node configuration: an Ignition (spec 3.x) config parsed
// and validated with Ignition's own config packages, checked against what kiln applies, and
// applied to the node's root by kiln-init before systemd starts (apply.go).
//
// kiln applies the config itself rather than running the Ignition program: a kiln image has no
// disks to partition at first boot (the image is the disk layout), no network in the initramfs,
// and a read-only root, so only the files, directories, links, systemd units and users sections
// make sense. Everything else is rejected with the field named — never silently ignored.
package nodeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	ignerrors "github.com/coreos/ignition/v2/config/shared/errors"
	"github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	vjson "github.com/coreos/vcontext/json"
	vpath "github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
)

// Config is a parsed per-node config, at the newest stable Ignition spec (older 3.x configs are
// translated forward, as Ignition does).
type Config = types.Config

// Problem is one thing wrong with a config, with where it is.
type Problem struct {
	Line, Column int64  // 0 when unknown
	Path         string // JSON path such as $.storage.files.0.path
	Message      string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	if p.Path != "" && p.Path != "$" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error lists every problem of one config file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		sep := ":"
		if p.Line == 0 {
			sep = ": "
		}
		lines[i] = e.File + sep + p.String()
	}
	return strings.Join(lines, "\n")
}

// Parse reads an Ignition config (spec 3.0–3.5) and checks it with exactly the rules the node
// applies: Ignition's own validation, unknown keys (Ignition only warns; a typo must not pass),
// and kiln's limits (check.go). It returns an *Error naming every problem with its line.
func Parse(file string, raw []byte) (Config, error) { return parse(file, raw, nil) }

// ParseTranslated is Parse for a config translated from another file (Butane): locate gives
// each problem's JSON path in raw the place in that file it comes from, setting the entries'
// contexts and markers.
func ParseTranslated(file string, raw []byte, locate func(*report.Report)) (Config, error) {
	return parse(file, raw, locate)
}

func parse(file string, raw []byte, locate func(*report.Report)) (Config, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return Config{}, &Error{File: file, Problems: []Problem{{Message: "empty Ignition config"}}}
	}
	tree, err := vjson.UnmarshalToContext(raw)
	if err != nil {
		return Config{}, &Error{File: file, Problems: []Problem{syntaxProblem(raw)}}
	}
	if locate == nil {
		locate = func(r *report.Report) {
			if tree != nil {
				r.Correlate(tree)
			}
		}
	}
	cfg, rpt, err := v3_5.ParseCompatibleVersion(raw)
	switch {
	case err == nil:
		check(cfg, &rpt)
	case errors.Is(err, ignerrors.ErrUnknownVersion) || errors.Is(err, ignerrors.ErrInvalidVersion):
		rpt = report.Report{}
		rpt.AddOnError(vpath.New("json", "ignition", "version"), versionError(raw))
	case decodeFailed(rpt):
		rpt = report.Report{}
		typeError(raw, &rpt)
	case !rpt.IsFatal():
		rpt.AddOnError(vpath.New("json"), err)
	}
	if len(rpt.Entries) > 0 {
		locate(&rpt)
	}
	if probs := Problems(rpt); len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return Config{}, &Error{File: file, Problems: probs}
	}
	return cfg, nil
}

// Problems keeps a report's errors and its unknown-key warnings (Ignition's and Butane's).
func Problems(r report.Report) []Problem {
	var out []Problem
	for _, e := range r.Entries {
		unused := strings.HasPrefix(strings.ToLower(e.Message), "unused key")
		if !e.Kind.IsFatal() && !unused {
			continue
		}
		p := Problem{Message: e.Message, Path: e.Context.String()}
		if unused {
			p.Message = "unknown field " + e.Message[len("unused key "):]
		}
		if e.Marker.StartP != nil {
			p.Line, p.Column = e.Marker.Start()
		}
		out = append(out, p)
	}
	return out
}

// Invalid marks the config as the user's input being wrong (exit code 2).
func (e *Error) Invalid() bool { return true }
