package insight

import (
	"errors"
	"math/big"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
)

// parseMicros parses a decimal amount ("2.85", "50000") exactly into
// micro-units; more than six decimals is an error, not a rounding.
func parseMicros(s string) (int64, error) {
	v, err := cost.ParseDecimal(s)
	if err != nil {
		return 0, err
	}
	v.Mul(v, big.NewRat(fleet.MicrosPerUnit, 1))
	if !v.IsInt() || !v.Num().IsInt64() {
		return 0, errors.New("more than 6 decimals or too large")
	}
	return v.Num().Int64(), nil
}
