package netns

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Pod annotations that request traffic shaping (the CNI "bandwidth" plugin).
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// defaultBurst is the burst, in bits, set with a rate: effectively unlimited,
// as containerd does (the bandwidth plugin rejects a rate without a burst).
const defaultBurst = math.MaxUint32

// Limits kubelet applies to the bandwidth annotations, in bits per second.
var (
	minBandwidth = big.NewRat(1000, 1)                          // 1k
	maxBandwidth = new(big.Rat).SetInt64(1_000_000_000_000_000) // 1P
)

// ParseBandwidth reads the kubernetes.io/{ingress,egress}-bandwidth
// annotations (Kubernetes quantities in bits per second: "10M", "1.5G",
// "512Ki", "1e6") into the "bandwidth" runtime capability, bursts set to
// unlimited. It returns nil when neither annotation is set, and an error
// wrapping ErrInvalidArgument for a malformed value or one outside kubelet's
// range [1k, 1P].
func ParseBandwidth(annotations map[string]string) (*Bandwidth, error) {
	var bw *Bandwidth
	for _, key := range []string{IngressBandwidthAnnotation, EgressBandwidthAnnotation} {
		s, ok := annotations[key]
		if !ok {
			continue
		}
		v, err := parseQuantity(s)
		if err == nil && (v.Cmp(minBandwidth) < 0 || v.Cmp(maxBandwidth) > 0) {
			err = fmt.Errorf("out of range [1k, 1P]")
		}
		if err != nil {
			return nil, fmt.Errorf("invalid %s annotation %q: %v: %w", key, s, err, errdefs.ErrInvalidArgument)
		}
		if bw == nil {
			bw = &Bandwidth{}
		}
		rate := ceilUint64(v)
		if key == IngressBandwidthAnnotation {
			bw.IngressRate, bw.IngressBurst = rate, defaultBurst
		} else {
			bw.EgressRate, bw.EgressBurst = rate, defaultBurst
		}
	}
	return bw, nil
}

var quantitySuffixes = map[string]*big.Rat{
	"":   big.NewRat(1, 1),
	"m":  big.NewRat(1, 1000),
	"k":  big.NewRat(1e3, 1),
	"M":  big.NewRat(1e6, 1),
	"G":  big.NewRat(1e9, 1),
	"T":  big.NewRat(1e12, 1),
	"P":  big.NewRat(1e15, 1),
	"E":  big.NewRat(1e18, 1),
	"Ki": big.NewRat(1<<10, 1),
	"Mi": big.NewRat(1<<20, 1),
	"Gi": big.NewRat(1<<30, 1),
	"Ti": big.NewRat(1<<40, 1),
	"Pi": big.NewRat(1<<50, 1),
	"Ei": big.NewRat(1<<60, 1),
}

// parseQuantity parses the Kubernetes quantity grammar: a decimal number with
// an optional sign and fraction, then a binary (Ki..Ei) or decimal (m, k..E)
// suffix or an exponent (e3, E-2).
func parseQuantity(s string) (*big.Rat, error) {
	s = strings.TrimSpace(s)
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		if s[i] != '.' {
			digits++
		}
		i++
	}
	num, suffix := s[:i], s[i:]
	if digits == 0 || strings.Count(num, ".") > 1 {
		return nil, fmt.Errorf("not a quantity")
	}
	v, ok := new(big.Rat).SetString(strings.TrimPrefix(num, "+"))
	if !ok {
		return nil, fmt.Errorf("not a quantity")
	}
	if v.Sign() < 0 {
		return nil, fmt.Errorf("negative quantity")
	}
	if mult, ok := quantitySuffixes[suffix]; ok {
		return v.Mul(v, mult), nil
	}
	if suffix[0] != 'e' && suffix[0] != 'E' {
		return nil, fmt.Errorf("unknown suffix %q", suffix)
	}
	exp := suffix[1:]
	e := strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-")
	if e == "" || len(e) > 3 || strings.Trim(e, "0123456789") != "" {
		return nil, fmt.Errorf("invalid exponent %q", suffix)
	}
	n := 0
	for _, c := range e {
		n = n*10 + int(c-'0')
	}
	pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil))
	if strings.HasPrefix(exp, "-") {
		return v.Quo(v, pow), nil
	}
	return v.Mul(v, pow), nil
}

// ceilUint64 rounds a non-negative rational up, as Quantity.Value does.
func ceilUint64(v *big.Rat) uint64 {
	q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Uint64()
}
