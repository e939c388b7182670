package charttest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestKafkaInstanceIDFromPodName: kafkaInstanceIdFromPodName gives each pod
// SLUICE_KAFKA_INSTANCE_ID from its own name (the downward API), once; off
// (the default) the variable is absent, so members are dynamic; set beside
// config.kafka.instanceId (one ID for every replica: they would fence each
// other) the chart refuses to render.
func TestKafkaInstanceIDFromPodName(t *testing.T) {
	ch := loadChart(t)
	instanceEnv := func(t *testing.T, set string) []corev1.EnvVar {
		t.Helper()
		r, err := render(t, ch, merge(readValues(t, "default"), parseValues(t, set)), nil)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		var found []corev1.EnvVar
		for _, d := range r.docs {
			o, err := decode(t, d)
			if err != nil {
				continue
			}
			if dep, ok := o.typed.(*appsv1.Deployment); ok {
				for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
					if e.Name == "SLUICE_KAFKA_INSTANCE_ID" {
						found = append(found, e)
					}
				}
			}
		}
		return found
	}
	on := instanceEnv(t, "kafkaInstanceIdFromPodName: true")
	if len(on) != 1 || on[0].ValueFrom == nil || on[0].ValueFrom.FieldRef == nil ||
		on[0].ValueFrom.FieldRef.FieldPath != "metadata.name" || on[0].Value != "" {
		t.Errorf("kafkaInstanceIdFromPodName: true rendered %+v, want one SLUICE_KAFKA_INSTANCE_ID from metadata.name", on)
	}
	if off := instanceEnv(t, "{}"); len(off) != 0 {
		t.Errorf("by default the chart sets %+v, want no SLUICE_KAFKA_INSTANCE_ID", off)
	}
	if one := instanceEnv(t, "config: {kafka: {instanceId: only-one}}"); len(one) != 1 || one[0].Value != "only-one" {
		t.Errorf("config.kafka.instanceId rendered %+v", one)
	}
	_, err := render(t, ch, merge(readValues(t, "default"),
		parseValues(t, "kafkaInstanceIdFromPodName: true\nconfig: {kafka: {instanceId: x}}")), nil)
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both set: %v, want a refusal", err)
	}
}
