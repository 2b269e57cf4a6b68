package recipe

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"syscall"
)

// FieldError is one problem in a recipe, located by file, line, column and field path.
type FieldError struct {
	File string
	Line int
	Col  int
	Path string // e.g. disk.size or files[2].mode; empty for document-level problems
	Msg  string
}

func (e FieldError) String() string {
	loc := fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// Errors is every problem found in one recipe. It is the error type of Load, and cmd/ maps it
// to the "invalid input" exit code.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.String()
	}
	return strings.Join(lines, "\n")
}

// Invalid marks the error as bad user input (exit code 2).
func (es Errors) Invalid() bool { return true }

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
	return es
}

// pos is a position in the recipe file.
type pos struct{ line, col int }

// positions maps field paths to where their values stand, so checks made after decoding can
// still say where a problem is.
type positions map[string]pos

// at returns the position of path, or of its nearest ancestor that has one.
func (p positions) at(path string) pos {
	for {
		if q, ok := p[path]; ok {
			return q
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			if q, ok := p[""]; ok {
				return q
			}
			return pos{1, 1}
		}
		path = path[:i]
	}
}

// collector gathers located problems for one file.
type collector struct {
	file      string
	pos       positions
	errs      Errors
	ambiguous bool // a field was given twice
}

func (c *collector) add(path, format string, args ...any) {
	c.addAt(c.pos.at(path), path, format, args...)
}

// addAt records a problem about path found at p.
func (c *collector) addAt(p pos, path, format string, args ...any) {
	c.errs = append(c.errs, FieldError{File: c.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// unreadable says why a path the recipe names cannot be used, from the error its stat gave:
// "does not exist", "is a symlink loop", or the system's words.
func unreadable(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	case errors.Is(err, syscall.ELOOP):
		return "is a symlink loop"
	case errors.Is(err, syscall.ENOTDIR):
		return "does not exist (a part of its path is not a directory)"
	case errors.As(err, &errno):
		return "cannot be read: " + errno.Error()
	}
	return "cannot be read: " + err.Error()
}
