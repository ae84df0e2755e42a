package netns

import (
	"errors"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestParseBandwidth(t *testing.T) {
	const unlimited = defaultBurst
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        *Bandwidth
		wantErr     bool
	}{
		{name: "none", annotations: map[string]string{"other": "1M"}},
		{name: "nil map"},
		{
			name:        "ingress decimal suffix",
			annotations: map[string]string{IngressBandwidthAnnotation: "10M"},
			want:        &Bandwidth{IngressRate: 10_000_000, IngressBurst: unlimited},
		},
		{
			name:        "egress binary suffix",
			annotations: map[string]string{EgressBandwidthAnnotation: "1Gi"},
			want:        &Bandwidth{EgressRate: 1 << 30, EgressBurst: unlimited},
		},
		{
			name: "both, fraction and exponent",
			annotations: map[string]string{
				IngressBandwidthAnnotation: "1.5k",
				EgressBandwidthAnnotation:  "2e6",
			},
			want: &Bandwidth{IngressRate: 1500, IngressBurst: unlimited, EgressRate: 2_000_000, EgressBurst: unlimited},
		},
		{
			name:        "fraction rounds up",
			annotations: map[string]string{IngressBandwidthAnnotation: "1.0005k"},
			want:        &Bandwidth{IngressRate: 1001, IngressBurst: unlimited},
		},
		{
			name:        "plain number and Ki, T",
			annotations: map[string]string{IngressBandwidthAnnotation: "64Ki", EgressBandwidthAnnotation: "1T"},
			want:        &Bandwidth{IngressRate: 65536, IngressBurst: unlimited, EgressRate: 1e12, EgressBurst: unlimited},
		},
		{
			name:        "exact kbit",
			annotations: map[string]string{EgressBandwidthAnnotation: "1000"},
			want:        &Bandwidth{EgressRate: 1000, EgressBurst: unlimited},
		},
		{name: "too small", annotations: map[string]string{IngressBandwidthAnnotation: "999"}, wantErr: true},
		{name: "milli too small", annotations: map[string]string{IngressBandwidthAnnotation: "5000m"}, wantErr: true},
		{name: "too large", annotations: map[string]string{IngressBandwidthAnnotation: "2P"}, wantErr: true},
		{name: "negative", annotations: map[string]string{IngressBandwidthAnnotation: "-10M"}, wantErr: true},
		{name: "garbage", annotations: map[string]string{EgressBandwidthAnnotation: "fast"}, wantErr: true},
		{name: "empty", annotations: map[string]string{EgressBandwidthAnnotation: ""}, wantErr: true},
		{name: "bad suffix", annotations: map[string]string{EgressBandwidthAnnotation: "10Mb"}, wantErr: true},
		{name: "lowercase mega is milli-ish garbage", annotations: map[string]string{EgressBandwidthAnnotation: "10mi"}, wantErr: true},
		{name: "two dots", annotations: map[string]string{EgressBandwidthAnnotation: "1.2.3M"}, wantErr: true},
		{name: "bad exponent", annotations: map[string]string{EgressBandwidthAnnotation: "1e"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBandwidth(tc.annotations)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
