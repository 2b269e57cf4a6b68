package nodeconfig

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	vpath "github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
)

// What a config may name. The node writes names into /etc/passwd, /etc/group and /etc/shadow
// and unit names into paths, so a name is a name and nothing more: no separators, no newlines,
// nothing that climbs out of its directory.
var (
	// userName is Debian's adduser rule (NAME_REGEX), at most 32 characters.
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}\$?$`)
	// unitName is systemd's: a prefix of [A-Za-z0-9:_.\@-] and a unit type.
	unitName = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)$`)
	// dropinName is a drop-in file of a unit's .d directory.
	dropinName = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.conf$`)
)

// maxID is the largest uid or gid a node takes ((uid_t)-1 means "none" to the kernel).
const maxID = 1<<32 - 2

// confine adds to r every name, id and path in c that would make the node write outside its
// place or corrupt a table of accounts.
func confine(c types.Config, r *report.Report) {
	root := vpath.New("json")
	for i, u := range c.Systemd.Units {
		p := root.Append("systemd", "units", i)
		if len(u.Name) > 255 || !unitName.MatchString(u.Name) || strings.HasPrefix(u.Name, ".") {
			r.AddOnError(p.Append("name"), fmt.Errorf("%q is not a systemd unit name (letters, digits, :_.\\@- and a unit type such as .service)", u.Name))
		}
		for j, d := range u.Dropins {
			if len(d.Name) > 255 || !dropinName.MatchString(d.Name) || strings.HasPrefix(d.Name, ".") {
				r.AddOnError(p.Append("dropins", j, "name"), fmt.Errorf("%q is not a drop-in file name (letters, digits, :_.\\@- ending in .conf)", d.Name))
			}
		}
	}
	for i, u := range c.Passwd.Users {
		p := root.Append("passwd", "users", i)
		name(r, p.Append("name"), u.Name)
		id(r, p.Append("uid"), u.UID)
		field(r, p.Append("passwordHash"), u.PasswordHash)
		field(r, p.Append("gecos"), u.Gecos)
		field(r, p.Append("shell"), u.Shell)
		if u.Shell != nil && !path.IsAbs(*u.Shell) {
			r.AddOnError(p.Append("shell"), fmt.Errorf("%q is not an absolute path", *u.Shell))
		}
		if u.PrimaryGroup != nil {
			name(r, p.Append("primaryGroup"), *u.PrimaryGroup)
		}
		for j, g := range u.Groups {
			name(r, p.Append("groups", j), string(g))
		}
		for j, k := range u.SSHAuthorizedKeys {
			if strings.ContainsAny(strings.TrimSpace(string(k)), "\n\r\x00") {
				r.AddOnError(p.Append("sshAuthorizedKeys", j), errors.New("an SSH key is one line"))
			}
		}
	}
	for i, g := range c.Passwd.Groups {
		p := root.Append("passwd", "groups", i)
		name(r, p.Append("name"), g.Name)
		id(r, p.Append("gid"), g.Gid)
		field(r, p.Append("passwordHash"), g.PasswordHash)
	}
	st := root.Append("storage")
	for i, f := range c.Storage.Files {
		owner(r, st.Append("files", i), f.Node)
	}
	for i, d := range c.Storage.Directories {
		owner(r, st.Append("directories", i), d.Node)
	}
	for i, l := range c.Storage.Links {
		p := st.Append("links", i)
		owner(r, p, l.Node)
		if boolean(l.Hard) && l.Target != nil {
			// a hard link shares the target's inode: it must be on the writable trees too
			checkPath(r, p.Append("target"), *l.Target)
		}
	}
}

// name checks a user or group name.
func name(r *report.Report, p vpath.ContextPath, s string) {
	if !userName.MatchString(s) {
		r.AddOnError(p, fmt.Errorf("%q is not a user or group name (lower-case letters, digits, _ and -, at most 32, not starting with a digit or -)", s))
	}
}

// field checks a value written as one field of /etc/passwd, /etc/group or /etc/shadow.
func field(r *report.Report, p vpath.ContextPath, s *string) {
	if s != nil && strings.ContainsAny(*s, ":\n\r\x00") {
		r.AddOnError(p, errors.New("must not contain ':', a newline or NUL (it is one field of an account table)"))
	}
}

func id(r *report.Report, p vpath.ContextPath, v *int) {
	if v != nil && (*v < 0 || *v > maxID) {
		r.AddOnError(p, fmt.Errorf("%d is not an id (0 to %d)", *v, maxID))
	}
}

func owner(r *report.Report, p vpath.ContextPath, n types.Node) {
	id(r, p.Append("user", "id"), n.User.ID)
	id(r, p.Append("group", "id"), n.Group.ID)
	if n.User.Name != nil {
		name(r, p.Append("user", "name"), *n.User.Name)
	}
	if n.Group.Name != nil {
		name(r, p.Append("group", "name"), *n.Group.Name)
	}
}
