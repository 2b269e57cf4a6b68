package nodeconfig

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5/types"
)

// table is one of /etc/passwd, /etc/group or /etc/shadow: lines of colon-separated fields.
type table struct {
	file string
	rows [][]string
}

func (a applier) readTable(name string) (*table, error) {
	t := &table{file: name}
	b, err := os.ReadFile(a.read(name))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != "" {
			t.rows = append(t.rows, strings.Split(l, ":"))
		}
	}
	return t, nil
}

func (t *table) find(name string) []string {
	for _, r := range t.rows {
		if r[0] == name {
			return r
		}
	}
	return nil
}

func (t *table) byID(id int) []string {
	for _, r := range t.rows {
		if len(r) > 2 && r[2] == strconv.Itoa(id) {
			return r
		}
	}
	return nil
}

// freeID is the lowest unused id from 1000 up, as useradd picks.
func (t *table) freeID() int {
	for id := 1000; ; id++ {
		if t.byID(id) == nil {
			return id
		}
	}
}

func (a applier) writeTable(t *table, m os.FileMode) error {
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(strings.Join(r, ":") + "\n")
	}
	return a.write(t.file, []byte(b.String()), m)
}

func (a applier) groups(c Config) error {
	if len(c.Passwd.Groups) == 0 {
		return nil
	}
	grp, err := a.readTable("/etc/group")
	if err != nil {
		return fmt.Errorf("reading /etc/group: %w", err)
	}
	for _, g := range c.Passwd.Groups {
		if grp.find(g.Name) != nil {
			continue
		}
		gid := grp.freeID()
		if g.Gid != nil {
			gid = *g.Gid
		}
		grp.rows = append(grp.rows, []string{g.Name, "x", strconv.Itoa(gid), ""})
	}
	return a.writeTable(grp, 0o644)
}

// users creates missing users (with their group and home) and sets passwords and SSH keys.
func (a applier) users(c Config) error {
	if len(c.Passwd.Users) == 0 {
		return nil
	}
	pw, err := a.readTable("/etc/passwd")
	if err != nil {
		return fmt.Errorf("reading /etc/passwd: %w", err)
	}
	grp, err := a.readTable("/etc/group")
	if err != nil {
		return fmt.Errorf("reading /etc/group: %w", err)
	}
	sh, err := a.readTable("/etc/shadow")
	if err != nil {
		return fmt.Errorf("reading /etc/shadow: %w", err)
	}
	for _, u := range c.Passwd.Users {
		if err := a.user(u, pw, grp, sh); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	for _, t := range []*table{pw, grp} {
		if err := a.writeTable(t, 0o644); err != nil {
			return err
		}
	}
	if err := a.writeTable(sh, 0o640); err != nil {
		return err
	}
	for _, u := range c.Passwd.Users {
		if err := a.sshKeys(u, pw); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	return nil
}

func (a applier) user(u types.PasswdUser, pw, grp, sh *table) error {
	row := pw.find(u.Name)
	if row == nil {
		uid := pw.freeID()
		if u.UID != nil {
			uid = *u.UID
		}
		gid := uid
		switch {
		case u.PrimaryGroup != nil:
			g := grp.find(*u.PrimaryGroup)
			if g == nil {
				return fmt.Errorf("primary group %s does not exist", *u.PrimaryGroup)
			}
			gid, _ = strconv.Atoi(g[2])
		case !boolean(u.NoUserGroup):
			if grp.byID(gid) != nil {
				gid = grp.freeID()
			}
			grp.rows = append(grp.rows, []string{u.Name, "x", strconv.Itoa(gid), ""})
		default:
			gid = 100 // users
		}
		home := str(u.HomeDir, "/home/"+u.Name)
		row = []string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), str(u.Gecos, ""), home, str(u.Shell, "/bin/bash")}
		pw.rows = append(pw.rows, row)
		sh.rows = append(sh.rows, []string{u.Name, "!", "", "0", "99999", "7", "", "", ""})
		if !boolean(u.NoCreateHome) {
			if err := a.mkdirAll(home, 0o700); err != nil {
				return err
			}
			if err := a.lchown(home, uid, gid); err != nil {
				return err
			}
		}
	}
	if u.PasswordHash != nil {
		if s := sh.find(u.Name); s != nil {
			s[1] = *u.PasswordHash
		} else {
			sh.rows = append(sh.rows, []string{u.Name, *u.PasswordHash, "", "0", "99999", "7", "", "", ""})
		}
	}
	for _, g := range u.Groups {
		r := grp.find(string(g))
		if r == nil {
			return fmt.Errorf("group %s does not exist", g)
		}
		members := strings.Split(r[3], ",")
		if r[3] == "" {
			members = nil
		}
		if !contains(members, u.Name) {
			r[3] = strings.Join(append(members, u.Name), ",")
		}
	}
	return nil
}

// sshKeys writes the user's keys to ~/.ssh/authorized_keys.d/ignition, as Fedora CoreOS does,
// and to ~/.ssh/authorized_keys, which a stock OpenSSH reads.
func (a applier) sshKeys(u types.PasswdUser, pw *table) error {
	if len(u.SSHAuthorizedKeys) == 0 {
		return nil
	}
	row := pw.find(u.Name)
	uid, _ := strconv.Atoi(row[2])
	gid, _ := strconv.Atoi(row[3])
	var keys strings.Builder
	for _, k := range u.SSHAuthorizedKeys {
		keys.WriteString(strings.TrimSpace(string(k)) + "\n")
	}
	ssh := path.Join(row[5], ".ssh")
	for _, d := range []string{ssh, ssh + "/authorized_keys.d"} {
		if err := a.mkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := a.lchown(d, uid, gid); err != nil {
			return err
		}
	}
	for _, f := range []string{ssh + "/authorized_keys.d/ignition", ssh + "/authorized_keys"} {
		if err := a.write(f, []byte(keys.String()), 0o600); err != nil {
			return err
		}
		if err := a.lchown(f, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// own sets a node's owner from its user and group (by id or by name); m, when not 0, is
// set again afterwards since chown clears setuid/setgid bits.
func (a applier) own(p string, n types.Node, m os.FileMode) error {
	uid, gid, err := a.owner(n)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := a.lchown(p, uid, gid); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if m != 0 {
		return a.chmod(p, m)
	}
	return nil
}

func (a applier) owner(n types.Node) (int, int, error) {
	uid, err := a.id("/etc/passwd", "user", n.User.ID, n.User.Name)
	if err != nil {
		return 0, 0, err
	}
	gid, err := a.id("/etc/group", "group", n.Group.ID, n.Group.Name)
	return uid, gid, err
}

// id is a node's owner id: given, looked up by name in table, or 0 (root).
func (a applier) id(table, what string, id *int, name *string) (int, error) {
	switch {
	case id != nil:
		return *id, nil
	case name == nil:
		return 0, nil
	}
	t, err := a.readTable(table)
	if err != nil {
		return 0, err
	}
	r := t.find(*name)
	if r == nil {
		return 0, fmt.Errorf("%s %s does not exist", what, *name)
	}
	return strconv.Atoi(r[2])
}

func str(s *string, def string) string {
	if s == nil || *s == "" {
		return def
	}
	return *s
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
