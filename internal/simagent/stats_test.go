package simagent

import (
	"reflect"
	"testing"
	"time"
)

// Stats.Add sums every counter (HeartbeatMax takes the larger): a field
// added to Stats and forgotten in Add fails here.
func TestStatsAddCoversEveryField(t *testing.T) {
	var one Stats
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			m.SetMapIndex(reflect.ValueOf("x"), reflect.ValueOf(1).Convert(f.Type().Elem()))
			f.Set(m)
		default:
			t.Fatalf("Stats.%s: a %v, which this test does not fill", v.Type().Field(i).Name, f.Kind())
		}
	}
	var sum Stats
	sum.Add(one)
	sum.Add(one)
	got := reflect.ValueOf(sum)
	for i := range got.NumField() {
		name := got.Type().Field(i).Name
		switch f := got.Field(i); {
		case name == "HeartbeatMax":
			if time.Duration(f.Int()) != 1 {
				t.Errorf("HeartbeatMax %v, want the larger (1ns)", f.Int())
			}
		case f.Kind() == reflect.Map:
			if f.Len() != 1 || f.MapIndex(f.MapKeys()[0]).Int() != 2 {
				t.Errorf("%s = %v, want its one key at 2", name, f)
			}
		default:
			if f.Int() != 2 {
				t.Errorf("%s = %d after adding 1 twice: Add leaves it out", name, f.Int())
			}
		}
	}
}
