// Package netcheck owns the rules for network names and ranges that recipes and cluster
// definitions share, written as the node's own programs apply them: DNS-1123 labels and
// subdomains, host names, API endpoints, and kubeadm's rules for pod and service subnets. Each
// check returns an error whose message names the value and the rule; callers locate it. A
// leaf: it imports nothing of kiln's.
package netcheck

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Length limits of names.
const (
	MaxLabel     = 63  // a DNS label (RFC 1123)
	MaxSubdomain = 253 // a DNS name, and a Kubernetes object name such as a node's
	MaxHostname  = 64  // Linux's HOST_NAME_MAX: sethostname refuses longer names
)

// APIPort is where kube-apiserver listens, and the port of an endpoint given without one.
const APIPort = 6443

var labelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Label checks that s is a DNS-1123 label: lower-case letters, digits and '-', not at either
// end, at most 63 characters.
func Label(s string) error {
	if len(s) > MaxLabel {
		return fmt.Errorf("a name of %d characters is not a DNS label (at most %d)", len(s), MaxLabel)
	}
	if !labelRE.MatchString(s) {
		return fmt.Errorf("%q is not a DNS label (lower-case letters, digits and '-', not at either end)", s)
	}
	return nil
}

// Subdomain checks that s is a DNS-1123 subdomain: DNS labels joined by dots, at most 253
// characters.
func Subdomain(s string) error {
	if len(s) > MaxSubdomain {
		return fmt.Errorf("a name of %d characters is not a DNS name (at most %d)", len(s), MaxSubdomain)
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > MaxLabel || !labelRE.MatchString(l) {
			return fmt.Errorf("%q is not a DNS name (labels of lower-case letters, digits and '-', at most %d each, joined by dots)", s, MaxLabel)
		}
	}
	return nil
}

// Hostname checks that s can be a node's host name: a DNS subdomain (kubelet names the node
// after it) that the kernel accepts, at most 64 characters.
func Hostname(s string) error {
	if len(s) > MaxHostname {
		return fmt.Errorf("a host name of %d characters is longer than the kernel's %d", len(s), MaxHostname)
	}
	return Subdomain(s)
}

// Endpoint checks an API endpoint given as host, host:port or https://host:port, and returns
// it as host:port (IPv6 addresses in brackets), the form kubeadm's controlPlaneEndpoint and
// a join's apiServerEndpoint take. A host without a port gets APIPort; a URL must give its
// port, since https alone would mean 443.
func Endpoint(s string) (string, error) {
	hostport := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			return "", fmt.Errorf("%q is not a URL such as https://10.0.0.10:6443", s)
		case u.Scheme != "https":
			return "", fmt.Errorf("%q: the API is reached over https; give host:port or https://host:port", s)
		case u.User != nil:
			return "", fmt.Errorf("%q: an endpoint carries no user information", s)
		case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			return "", fmt.Errorf("%q: an endpoint has no path, query or fragment", s)
		case u.Port() == "":
			return "", fmt.Errorf("%q: give the port, e.g. https://%s:%d", s, u.Hostname(), APIPort)
		}
		hostport = u.Host
	}
	h, p, err := hostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if p == 0 {
		p = APIPort
	}
	return net.JoinHostPort(h, strconv.Itoa(p)), nil
}

// HostPort reads host or host:port, as a registry or an endpoint is named: the host in its
// canonical form, and the port, 0 when none is given.
func HostPort(s string) (string, int, error) {
	h, p, err := hostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", s, err)
	}
	return h, p, nil
}

func hostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	hasPort := err == nil
	if !hasPort { // a name, an IPv4 address, or an IPv6 one with or without brackets
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	h, err := endpointHost(host)
	if err != nil || !hasPort {
		return h, 0, err
	}
	p, err := Port(port)
	if err != nil {
		return "", 0, err
	}
	return h, p, nil
}

// endpointHost checks the host of an endpoint: an IP address every node can reach (no zone,
// not unspecified) or a DNS name.
func endpointHost(h string) (string, error) {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" || a.IsUnspecified() || a.Is4In6() {
			return "", fmt.Errorf("%s is not an address other machines can reach", h)
		}
		return a.String(), nil
	}
	if strings.Contains(h, ":") || Subdomain(h) != nil {
		return "", fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
	}
	return h, nil
}

var portRE = regexp.MustCompile(`^[0-9]{1,5}$`)

// Port reads a TCP port: decimal, 1 to 65535.
func Port(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if !portRE.MatchString(s) || err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}
