package serve

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// openapi.yaml documents exactly the routes the server mounts, and each
// response type's JSON fields are its schema's properties.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var documented, served []string
	for p, ops := range doc.Paths {
		for op := range ops {
			documented = append(documented, strings.ToUpper(op)+" "+p)
		}
	}
	for r := range (&Server{}).Routes() {
		served = append(served, r)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("openapi.yaml documents %v, the server mounts %v", documented, served)
	}
	for name, typ := range map[string]reflect.Type{"Prediction": reflect.TypeOf(Prediction{}), "PredictResponse": reflect.TypeOf(PredictResponse{}),
		"ModelInfo": reflect.TypeOf(ModelInfo{}), "ShadowComparison": reflect.TypeOf(ShadowComparison{}), "VersionMetrics": reflect.TypeOf(VersionMetrics{})} {
		var fields, props []string
		for f := range typ.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields = append(fields, tag)
		}
		for p := range doc.Components.Schemas[name].Properties {
			props = append(props, p)
		}
		slices.Sort(fields)
		slices.Sort(props)
		if !slices.Equal(fields, props) {
			t.Errorf("schema %s has properties %v, the type's JSON fields are %v", name, props, fields)
		}
	}
}
