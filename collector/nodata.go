package collector

import "fmt"

// noData is an error that says why hardware is absent in its own words and
// still matches ErrNoData with errors.Is.
type noData struct{ msg string }

func (e *noData) Error() string        { return e.msg }
func (e *noData) Is(target error) bool { return target == ErrNoData }

// NoData returns an error wrapping ErrNoData whose text is exactly the
// formatted message (no ": hardware not present" suffix).
func NoData(format string, a ...any) error { return &noData{fmt.Sprintf(format, a...)} }
