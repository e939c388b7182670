package sinks

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/consumer"
)

// Line is the JSON form of a message, one per line, as the stdout and file
// sinks write it (and the HTTP sink sends it). Key, value and header values
// are strings when they are valid UTF-8 and base64 (in the *_b64 fields)
// otherwise, so nothing is mangled. Headers are a list of pairs in the
// record's order, so a repeated header keeps every value.
type Line struct {
	Source    string       `json:"source"`
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Time      time.Time    `json:"time"`
	Key       *string      `json:"key,omitempty"`
	KeyB64    string       `json:"key_b64,omitempty"`
	Value     *string      `json:"value,omitempty"`
	ValueB64  string       `json:"value_b64,omitempty"`
	Headers   []LineHeader `json:"headers,omitempty"`
}

// LineHeader is one header of a Line: Value when the value is valid UTF-8,
// else ValueB64 (standard base64); neither for a header with no value.
type LineHeader struct {
	Key      string  `json:"key"`
	Value    *string `json:"value,omitempty"`
	ValueB64 string  `json:"value_b64,omitempty"`
}

// appendLine appends m as one JSON line to buf.
func appendLine(buf []byte, m *consumer.Message) ([]byte, error) {
	l := Line{Source: m.Source, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time}
	text := func(b []byte) (*string, string) {
		if b == nil {
			return nil, ""
		}
		if utf8.Valid(b) {
			s := string(b)
			return &s, ""
		}
		return nil, base64.StdEncoding.EncodeToString(b)
	}
	l.Key, l.KeyB64 = text(m.Key)
	l.Value, l.ValueB64 = text(m.Value)
	if len(m.Headers) > 0 {
		l.Headers = make([]LineHeader, len(m.Headers))
		for i, h := range m.Headers {
			l.Headers[i].Key = h.Key
			l.Headers[i].Value, l.Headers[i].ValueB64 = text(h.Value)
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		return buf, err
	}
	buf = append(buf, b...)
	return append(buf, '\n'), nil
}
