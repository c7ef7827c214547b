package wire

import (
	"reflect"
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

// TestMoneyFieldsListEveryMoneyField: a money field added to Summary or
// CostLine and not to its MoneyFields would be left out of every sum.
func TestMoneyFieldsListEveryMoneyField(t *testing.T) {
	var s Summary
	var c CostLine
	for _, tc := range []struct {
		v      any
		listed []*fleet.Money
	}{{&s, s.MoneyFields()}, {&c, c.MoneyFields()}} {
		rv := reflect.ValueOf(tc.v).Elem()
		want := map[*fleet.Money]string{}
		for _, sf := range reflect.VisibleFields(rv.Type()) { // Burn's too
			if sf.Type == reflect.TypeFor[fleet.Money]() {
				want[rv.FieldByIndex(sf.Index).Addr().Interface().(*fleet.Money)] = sf.Name
			}
		}
		for _, p := range tc.listed {
			if _, ok := want[p]; !ok {
				t.Errorf("%T.MoneyFields lists a field twice or one that is not its own", tc.v)
			}
			delete(want, p)
		}
		for _, name := range want {
			t.Errorf("%T.MoneyFields leaves out %s", tc.v, name)
		}
	}
}
