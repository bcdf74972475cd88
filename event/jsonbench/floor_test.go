package jsonbench

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/buger/jsonparser"
	"github.com/go-json-experiment/json/jsontext"
)

func BenchmarkFloor(b *testing.B) {
	b.Run("std-Valid", func(b *testing.B) {
		benchCorpus(b, func(d []byte) error { json.Valid(d); return nil })
	})
	b.Run("jsontext-ReadValue", func(b *testing.B) {
		var dec jsontext.Decoder
		var buf bytes.Buffer
		benchCorpus(b, func(d []byte) error {
			buf = *bytes.NewBuffer(d)
			dec.Reset(&buf, jtOpts)
			_, err := dec.ReadValue()
			return err
		})
	})
	b.Run("jsontext-tokens", func(b *testing.B) {
		var dec jsontext.Decoder
		var buf bytes.Buffer
		benchCorpus(b, func(d []byte) error {
			buf = *bytes.NewBuffer(d)
			dec.Reset(&buf, jtOpts)
			dec.ReadToken()
			for dec.PeekKind() != '}' {
				dec.ReadValue()
				if _, err := dec.ReadValue(); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("jsonparser-ObjectEach", func(b *testing.B) {
		benchCorpus(b, func(d []byte) error {
			return jsonparser.ObjectEach(d, func(k, v []byte, t jsonparser.ValueType, off int) error { return nil })
		})
	})
	b.Run("string-copy", func(b *testing.B) {
		var s string
		benchCorpus(b, func(d []byte) error { s = string(d); return nil })
		_ = s
	})
}
