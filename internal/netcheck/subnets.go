package netcheck

import (
	"fmt"
	"net/netip"
	"strings"
)

// kubeadm's limits on a cluster's ranges (cmd/kubeadm/app/constants, as of v1.37), which it
// checks when `kubeadm init` reads its configuration, on the node.
const (
	// MaxServiceHostBits bounds the service subnet: at most 2^20 addresses, a /12 for IPv4
	// and a /108 for IPv6 (the API server refuses larger ones too).
	MaxServiceHostBits = 20
	// MinServiceAddresses: the DNS service takes the tenth address of the range.
	MinServiceAddresses = 10
	// MinPodAddresses is the least a pod subnet must hold.
	MinPodAddresses = 14
	// MaxNodeMaskDiff: a node's slice of the pod subnet is at most 16 bits longer than the
	// subnet (kube-controller-manager keeps a bitmap of the slices).
	MaxNodeMaskDiff = 16
	// DefaultNodeMask4 and DefaultNodeMask6 are kube-controller-manager's
	// node-cidr-mask-size-ipv4 and -ipv6: the prefix length of each node's pod range.
	DefaultNodeMask4 = 24
	DefaultNodeMask6 = 64
)

// Prefix reads a single CIDR such as 10.244.0.0/16 or fd00:10:244::/56, written as its
// network (no host bits set). Dual-stack pairs are not supported.
func Prefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, ",") {
		return netip.Prefix{}, fmt.Errorf("%q: dual-stack ranges are not supported; give one CIDR", s)
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, fmt.Errorf("%q is not a CIDR such as 10.244.0.0/16", s)
	case p.Addr().Is4In6():
		return p, fmt.Errorf("%q: write an IPv4 range as IPv4", s)
	case p != p.Masked():
		return p, fmt.Errorf("%q has host bits set: the range it names is %s", s, p.Masked())
	}
	return p, nil
}

// hostBits is the number of bits that vary inside p.
func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// fits says whether a range of hostBits bits holds at least n addresses.
func fits(hostBits, n int) bool { return hostBits >= 63 || int64(1)<<hostBits >= int64(n) }

// ServiceSubnet checks a service subnet's size against kubeadm's limits.
func ServiceSubnet(p netip.Prefix) error {
	switch hb := hostBits(p); {
	case hb > MaxServiceHostBits:
		return fmt.Errorf("%s is too large: kubeadm allows at most %d host bits (a /%d)", p, MaxServiceHostBits, p.Addr().BitLen()-MaxServiceHostBits)
	case !fits(hb, MinServiceAddresses):
		return fmt.Errorf("%s is too small: kubeadm needs at least %d addresses (the DNS service takes the tenth)", p, MinServiceAddresses)
	}
	return nil
}

// DefaultNodeMask is kube-controller-manager's node mask for p's family.
func DefaultNodeMask(p netip.Prefix) int {
	if p.Addr().Is4() {
		return DefaultNodeMask4
	}
	return DefaultNodeMask6
}

// PodSubnet checks a pod subnet against kubeadm's limits, given the prefix length of each
// node's slice of it (nodeMask).
func PodSubnet(p netip.Prefix, nodeMask int) error {
	switch {
	case nodeMask < 1 || nodeMask > p.Addr().BitLen():
		return fmt.Errorf("a node mask of %d is not a prefix length for %s", nodeMask, p)
	case !fits(hostBits(p), MinPodAddresses):
		return fmt.Errorf("%s is too small: kubeadm needs at least %d addresses", p, MinPodAddresses)
	case p.Bits() > nodeMask:
		return fmt.Errorf("%s is smaller than one node's pod range, a /%d: use a /%d or larger", p, nodeMask, nodeMask)
	case nodeMask-p.Bits() > MaxNodeMaskDiff:
		return fmt.Errorf("%s is too large for node ranges of /%d: kubeadm allows at most %d bits between them (a /%d)", p, nodeMask, MaxNodeMaskDiff, nodeMask-MaxNodeMaskDiff)
	}
	return nil
}

// Disjoint checks that the pod subnet pod and the service subnet svc are of one family (kiln
// does not set up dual-stack clusters) and share no address.
func Disjoint(pod, svc netip.Prefix) error {
	switch {
	case pod.Addr().Is4() != svc.Addr().Is4():
		return fmt.Errorf("the pod subnet %s and the service subnet %s are of different IP families: use one (dual-stack is not supported)", pod, svc)
	case pod.Overlaps(svc):
		return fmt.Errorf("the pod subnet %s and the service subnet %s overlap", pod, svc)
	}
	return nil
}
