package uki

import (
	"debug/pe"
	"fmt"
	"io"
	"strings"
)

// Section is one section of a PE image, as its header describes it.
type Section struct {
	Name           string `json:"name"`
	VirtualAddress uint32 `json:"virtualAddress"`
	VirtualSize    uint32 `json:"virtualSize"`
	Offset         uint32 `json:"offset"`
	Size           uint32 `json:"size"` // in the file
}

// Info is what kiln inspect shows of a UKI.
type Info struct {
	Sections  []Section `json:"sections"`
	Cmdline   string    `json:"cmdline"`
	Uname     string    `json:"uname"`
	OSRelease string    `json:"osRelease"`
}

// maxText bounds the text sections Read returns (a command line is at most a few KiB).
const maxText = 64 << 10

// Read lists a UKI's sections and returns its command line and kernel release.
func Read(r io.ReaderAt) (Info, error) {
	f, err := pe.NewFile(r)
	if err != nil {
		return Info{}, fmt.Errorf("reading the UKI: %w", err)
	}
	var info Info
	for _, s := range f.Sections {
		info.Sections = append(info.Sections, Section{Name: s.Name, VirtualAddress: s.VirtualAddress,
			VirtualSize: s.VirtualSize, Offset: s.Offset, Size: s.Size})
		var dst *string
		switch s.Name {
		case SectionCmdline:
			dst = &info.Cmdline
		case SectionUname:
			dst = &info.Uname
		case SectionOSRel:
			dst = &info.OSRelease
		default:
			continue
		}
		if *dst, err = text(s); err != nil {
			return Info{}, fmt.Errorf("reading the UKI's %s: %w", s.Name, err)
		}
	}
	if f.Section(SectionLinux) == nil {
		return Info{}, fmt.Errorf("reading the UKI: it has no %s section", SectionLinux)
	}
	return info, nil
}

// text is a section's bytes up to its virtual size (what systemd-stub reads), bounded.
func text(s *pe.Section) (string, error) {
	n := min(s.VirtualSize, s.Size)
	if n > maxText {
		return "", fmt.Errorf("%d bytes, more than %d", n, maxText)
	}
	b := make([]byte, n)
	if _, err := s.ReadAt(b, 0); err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\x00"), nil
}
