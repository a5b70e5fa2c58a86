package analyst

import (
	"fmt"
	"reflect"
	"time"
)

func newOf(t reflect.Type) any { return reflect.New(t).Interface() }

func deref(v any) string {
	rv := reflect.ValueOf(v).Elem()
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		rv = rv.Elem()
	}
	switch x := rv.Interface().(type) {
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 {
			return x.Format("2006-01-02")
		}
		return x.UTC().Format("2006-01-02 15:04:05")
	case float64:
		return fmt.Sprintf("%g", x)
	case []float64:
		return fmt.Sprintf("%g", x)
	}
	return fmt.Sprint(rv.Interface())
}
