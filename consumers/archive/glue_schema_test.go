package archive

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// The Glue table that Athena reads (infra/glue.tf) takes its columns from
// infra/archive-columns.json. Athena refuses a column whose type does not
// match the Parquet files' (HIVE_BAD_DATA: an INT64 read as int), so the
// file is checked here against the Row schema the archive writes.

type glueColumn struct {
	Name, Type, Comment string
}

// hiveType is the Athena/Hive type that reads a Parquet column.
func hiveType(f parquet.Field) (string, error) {
	lt := ""
	if l := f.Type().LogicalType(); l != nil {
		lt = l.String()
	}
	if !f.Leaf() {
		if kv := f.Fields(); lt == "MAP" && len(kv) == 1 && len(kv[0].Fields()) == 2 {
			k, err1 := hiveType(kv[0].Fields()[0])
			v, err2 := hiveType(kv[0].Fields()[1])
			if err1 != nil || err2 != nil {
				return "", fmt.Errorf("map %s: %v %v", f.Name(), err1, err2)
			}
			return "map<" + k + "," + v + ">", nil
		}
		return "", fmt.Errorf("group %s (%s): no Athena type mapped", f.Name(), lt)
	}
	switch k := f.Type().Kind(); {
	case k == parquet.Boolean:
		return "boolean", nil
	case k == parquet.Int32 && (lt == "" || strings.HasPrefix(lt, "INT(32")):
		return "int", nil
	case k == parquet.Int64 && strings.HasPrefix(lt, "TIMESTAMP") && strings.Contains(lt, "MILLIS"):
		return "timestamp", nil
	case k == parquet.Int64 && (lt == "" || strings.HasPrefix(lt, "INT(64")):
		return "bigint", nil
	case k == parquet.Float:
		return "float", nil
	case k == parquet.Double:
		return "double", nil
	case k == parquet.ByteArray && lt == "STRING":
		return "string", nil
	}
	return "", fmt.Errorf("column %s: %v %s has no Athena type mapped", f.Name(), f.Type().Kind(), lt)
}

// schemaMismatches compares the Glue columns with the Parquet schema, in
// order; partition is the Parquet column that is a partition key instead.
func schemaMismatches(schema *parquet.Schema, cols []glueColumn, partition string) []string {
	var out []string
	var want []glueColumn
	for _, f := range schema.Fields() {
		if f.Name() == partition {
			continue
		}
		t, err := hiveType(f)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		want = append(want, glueColumn{Name: f.Name(), Type: t})
	}
	for i := range max(len(want), len(cols)) {
		switch {
		case i >= len(cols):
			out = append(out, fmt.Sprintf("Parquet column %s (%s) has no Glue column", want[i].Name, want[i].Type))
		case i >= len(want):
			out = append(out, fmt.Sprintf("Glue column %s is not in the Parquet files", cols[i].Name))
		case cols[i].Name != want[i].Name:
			out = append(out, fmt.Sprintf("column %d: Glue has %s where the Parquet files have %s", i+1, cols[i].Name, want[i].Name))
		case cols[i].Type != want[i].Type:
			out = append(out, fmt.Sprintf("column %s: Glue type %s, but the Parquet files hold %s (Athena: HIVE_BAD_DATA)", cols[i].Name, cols[i].Type, want[i].Type))
		}
	}
	return out
}

func TestGlueColumns_MatchTheParquetSchemaTheArchiveWrites(t *testing.T) {
	b, err := os.ReadFile("../../infra/archive-columns.json")
	if err != nil {
		t.Fatal(err)
	}
	var cols []glueColumn
	if err := json.Unmarshal(b, &cols); err != nil {
		t.Fatal(err)
	}
	schema := parquet.SchemaOf(Row{})
	for _, m := range schemaMismatches(schema, cols, "type") {
		t.Error(m)
	}

	// The check catches what it is for: the INT64 position declared int (as it
	// once was), a missing column, a renamed one.
	wrong := append([]glueColumn(nil), cols...)
	for i := range wrong {
		if wrong[i].Name == "position" {
			wrong[i].Type = "int"
		}
	}
	if got := strings.Join(schemaMismatches(schema, wrong, "type"), "\n"); !strings.Contains(got, "column position: Glue type int, but the Parquet files hold bigint") {
		t.Errorf("position as int not caught: %q", got)
	}
	if got := schemaMismatches(schema, cols[:len(cols)-1], "type"); len(got) != 1 || !strings.Contains(got[0], "arrival_ts (timestamp) has no Glue column") {
		t.Errorf("a missing column: %q", got)
	}
}
