// Package opt fills options left unset with their defaults, one line an
// option, for the constructors of every layer.
package opt

// Positive sets *p to def unless *p is positive: zero is "unset", and a
// negative count, size or duration means nothing a caller could want.
func Positive[T ~int | ~int64 | ~float64](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}
