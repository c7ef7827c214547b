package fleet

import "strconv"

// OptFloat is a value that may be absent (absent is not zero). It is
// comparable, and in JSON it is a number, or left out with omitzero (null
// when not left out).
type OptFloat struct {
	V  float64
	OK bool
}

// Some returns a present v.
func Some(v float64) OptFloat { return OptFloat{V: v, OK: true} }

// IsZero reports absence (for omitzero).
func (o OptFloat) IsZero() bool { return !o.OK }

// Get returns the value and whether it is present.
func (o OptFloat) Get() (float64, bool) { return o.V, o.OK }

// MarshalJSON writes the number, or null when absent.
func (o OptFloat) MarshalJSON() ([]byte, error) {
	if !o.OK {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, o.V, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number or null.
func (o *OptFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = OptFloat{}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*o = Some(v)
	return nil
}
