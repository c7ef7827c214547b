package collector

import (
	"errors"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"wss://agg.example:7443", false, true},
		{"ws://127.0.0.1:7070", false, true},
		{"ws://localhost:7070", false, true},
		{"ws://[::1]:7070", false, true},
		{"ws://agg.example:7070", false, false},
		{"ws://10.0.0.1:7070", false, false},
		{"ws://10.0.0.1:7070", true, true},
		{"http://127.0.0.1:7070", true, false},
	} {
		err := CheckURL(tc.url, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, %v) = %v", tc.url, tc.insecure, err)
		}
		if !tc.ok && tc.url[:3] == "ws:" && !errors.Is(err, ErrInsecureURL) {
			t.Errorf("CheckURL(%q) = %v, want ErrInsecureURL", tc.url, err)
		}
	}
}
