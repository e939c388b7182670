package charttest

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}

// at walks maps by keys; nil when a key is missing.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func boolAt(v any, keys ...string) bool { b, _ := at(v, keys...).(bool); return b }

func numAt(v any, keys ...string) float64 {
	switch n := at(v, keys...).(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	case int:
		return float64(n)
	}
	return 0
}

func intAt(v any, keys ...string) int { return int(numAt(v, keys...)) }

func strAt(v any, keys ...string) string { s, _ := at(v, keys...).(string); return s }

func itoa(i int) string { return strconv.Itoa(i) }
