package config

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/sluicehq/sluice/consumer"
)

// Var is one variable as the docs show it.
type Var struct {
	Name, Default, Help string
	Secret              bool
}

// Vars lists every variable in the table's order, with its default as the
// owning package sets it ("" when there is none or it is derived).
func Vars() []Var {
	def := defaults()
	out := make([]Var, 0, len(table))
	for _, s := range table {
		d := ""
		if !s.file && !s.derived {
			d = format(field(&def, s.to), s.size, false)
		}
		out = append(out, Var{Name: Prefix + s.name, Default: d, Help: s.help, Secret: s.secret})
	}
	return out
}

// EnvTable writes every variable as a Markdown table (README.md's, and the
// list the chart's tests check their mapping against).
func EnvTable(w io.Writer) {
	fmt.Fprintln(w, "| variable | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, v := range Vars() {
		d := v.Default
		if d != "" {
			d = "`" + d + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", v.Name, d, v.Help)
	}
}

// Print writes the effective configuration, one variable a line, with the
// values the packages will use (defaults and derived values included) and
// secrets redacted. A _FILE variable shows the file it names.
func Print(w io.Writer, environ []string, cfg *Config) {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range table {
		var val string
		if s.file {
			val = vars[Prefix+s.name]
		} else {
			val = format(field(cfg, s.to), s.size, true)
			switch {
			case s.secret && val != "":
				val = "<redacted>"
			case s.url:
				val = consumer.RedactURL(val)
			}
		}
		fmt.Fprintf(tw, "%s%s\t%s\n", Prefix, s.name, val)
	}
	tw.Flush()
}

// format writes v as a variable would set it (human for sizes when spaced).
func format(v reflect.Value, size, spaced bool) string {
	switch {
	case size:
		n := v.Int()
		if n == 0 {
			return "0"
		}
		s := humanize.IBytes(uint64(n))
		if !spaced {
			s = strings.ReplaceAll(s, " ", "")
		}
		return s
	case v.Type() == durationType:
		return fmtDuration(time.Duration(v.Int()))
	case v.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case v.Kind() == reflect.Slice:
		return strings.Join(v.Interface().([]string), ",")
	case v.Kind() == reflect.Map:
		m := v.Interface().(map[string]string)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + ":" + m[k]
		}
		return strings.Join(keys, ",")
	}
	return fmt.Sprint(v.Interface())
}
