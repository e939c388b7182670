package charttest

import (
	"strings"
	"testing"
)

// TestRefuses: what the chart must refuse to render, and the message that
// tells the user what to do. Each case starts from ci/default-values.yaml.
func TestRefuses(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name, set, want string
	}{
		// values.schema.json: unknown keys and wrong types.
		{"unknown top-level value", "replicas: 3", "replicas"},
		{"misspelled config key", "config: {kafka: {brokerz: [a:9092]}}", "brokerz"},
		{"misspelled nested key", "autoscaling: {hpa: {enabeld: true}}", "enabeld"},
		{"wrong type", "replicaCount: two", "replicaCount"},
		{"bad enum", "config: {ordering: random}", "ordering"},
		{"bad duration", "config: {commitInterval: 1 second}", "commitInterval"},
		{"password as plain text", "config: {kafka: {sasl: {password: hunter2}}}", "password"},
		{"DSN as plain text", "config: {sink: {postgres: {dsn: postgres://u:p@db/x}}}", "dsn"},
		{"secret reference without key", "config: {nats: {token: {name: t}}}", "token"},
		{"bad http address", "config: {httpAddr: localhost}", "httpAddr"},
		{"TLS key as content, not a path", "config: {nats: {tls: {key: \"-----BEGIN PRIVATE KEY-----\\nMIGHAgEA\\n-----END PRIVATE KEY-----\\n\"}}}", "/config/nats/tls/key"},
		{"NKey seed as a value, not a path", "config: {nats: {nkey: SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY}}", "/config/nats/nkey"},
		{"bad JetStream deliver policy", "config: {nats: {deliver: last}}", "deliver"},
		{"bad NATS duration", "config: {nats: {reconnectMaxWait: 5 seconds}}", "reconnectMaxWait"},
		{"bad Kafka session timeout", "config: {kafka: {sessionTimeout: 45}}", "sessionTimeout"},
		// Template guards: what a schema cannot say.
		{"HPA and KEDA both on", "autoscaling: {hpa: {enabled: true}, keda: {enabled: true, prometheus: {serverAddress: http://p:9090}}}", "pick one"},
		{"grace period equal to the shutdown timeout", "terminationGracePeriodSeconds: 30", "must be longer than config.shutdownTimeout"},
		{"grace period shorter than the shutdown timeout", "config: {shutdownTimeout: 1m30s}\nterminationGracePeriodSeconds: 60", "at least 91"},
		{"minReplicas above the partition cap", "autoscaling: {minReplicas: 4, partitions: 3, hpa: {enabled: true}}", "minReplicas"},
		{"HPA scaling to zero", "autoscaling: {minReplicas: 0, hpa: {enabled: true}}", "scale to zero needs KEDA"},
		{"KEDA idle replicas not below the minimum", "autoscaling: {minReplicas: 1, keda: {enabled: true, idleReplicaCount: 1, prometheus: {serverAddress: http://p:9090}}}", "idleReplicaCount (1) must be below"},
		{"KEDA without a Prometheus address", "autoscaling: {keda: {enabled: true}}", "serverAddress"},
		{"KEDA without triggers", "autoscaling: {keda: {enabled: true, prometheus: {enabled: false}}}", "at least one trigger"},
		{"jetstream without a URL", "config: {source: jetstream}", "config.nats.url"},
		{"core nats, many replicas, no queue", "replicaCount: 2\nconfig: {source: nats, nats: {url: nats://n:4222}}", "queue"},
		{"NATS client certificate without its key", "config: {nats: {tls: {cert: {name: nats-tls, key: tls.crt}}}}", "config.nats.tls.cert and config.nats.tls.key: set both"},
		{"Kafka client key without its certificate", "config: {kafka: {tls: {key: /etc/kafka/tls.key}}}", "config.kafka.tls.cert and config.kafka.tls.key: set both"},
		{"ServiceMonitor without the Service", "metrics: {service: {enabled: false}, serviceMonitor: {force: true}}", "metrics.service.enabled"},
		{"unparsable memory limit", "resources: {limits: {memory: lots}}", "resources.limits.memory"},
		{"NetworkPolicy letting nobody in", "networkPolicy: {enabled: true}", "networkPolicy.namespaces"},
		{"namespace name that is not one", "networkPolicy: {enabled: true, namespaces: [Monitoring]}", "namespaces"},
		{"admin address on the http port", "config: {httpAddr: \":9000\", adminAddr: \"127.0.0.1:9000\"}", "share port 9000"},
		{"http address on the default admin port", "config: {httpAddr: \":8081\"}", "share port 8081"},
		{"bad admin address", "config: {adminAddr: localhost}", "adminAddr"},
		{"KEDA's Kafka scaler on a share group", "config: {source: kafka-share}\nautoscaling: {keda: {enabled: true, prometheus: {serverAddress: http://p:9090}, kafka: {enabled: true}}}", "not share groups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := merge(readValues(t, "default"), parseValues(t, tc.set))
			_, err := render(t, ch, vals, withOperators)
			if err == nil {
				t.Fatalf("rendered with %q; want an error mentioning %q", tc.set, tc.want)
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}

	t.Run("no values at all", func(t *testing.T) {
		_, err := render(t, ch, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "config.kafka.brokers") {
			t.Fatalf("want an error asking for config.kafka.brokers, got %v", err)
		}
	})
}

// TestRenders: values that look odd but are fine must render.
func TestRenders(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ name, set, want string }{
		{"big numbers stay integers", "config: {buffer: {maxRecords: 10000000}}", `value: "10000000"`},
		{"false is rendered, not dropped", "config: {autoscale: {enabled: false}}", "name: SLUICE_AUTOSCALE\n              value: \"false\""},
		{"pass-through wins without a duplicate", "env: [{name: SLUICE_LOG_LEVEL, value: debug}]", "name: SLUICE_LOG_LEVEL\n              value: debug"},
		{"port from httpAddr", "config: {httpAddr: \"0.0.0.0:9102\"}", "containerPort: 9102"},
		{"IPv6 httpAddr", "config: {httpAddr: \"[::]:9102\"}", "containerPort: 9102"},
		{"GOMEMLIMIT at 90% of the limit", "resources: {limits: {memory: 1Gi}}", `value: "966367641"`},
		{"grace period one second over", "config: {shutdownTimeout: 44s}", "terminationGracePeriodSeconds: 45"},
		{"core nats with a queue", "replicaCount: 3\nconfig: {source: nats, nats: {url: nats://n:4222, queue: q, subjects: orders}}", "SLUICE_NATS_QUEUE"},
		{"NATS mutual TLS mounted from its Secret", "config: {nats: {tls: {cert: {name: nats-tls, key: tls.crt}, key: {name: nats-tls, key: tls.key}}}}", "value: \"/etc/sluice/secrets/nats-tls-key/tls.key\""},
		{"NATS sizes and counts as given", "config: {nats: {pendingMsgs: 1000000, pendingBytes: 1GiB, pullMaxRecords: \"5000\"}}", "value: \"1000000\""},
		{"PDB minAvailable wins over the default maxUnavailable", "podDisruptionBudget: {minAvailable: 2}", "minAvailable: 2"},
		{"maxReplicas capped at partitions", "autoscaling: {partitions: 6, maxReplicas: 50, keda: {enabled: true, prometheus: {serverAddress: http://p:9090}}}", "maxReplicaCount: 6"},
		{"a share group is not capped at partitions", "config: {source: kafka-share}\nautoscaling: {partitions: 6, maxReplicas: 50, keda: {enabled: true, prometheus: {serverAddress: http://p:9090}}}", "maxReplicaCount: 50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := merge(readValues(t, "default"), parseValues(t, tc.set))
			r, err := render(t, ch, vals, withOperators)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			all := mustJoin(r.docs)
			if !strings.Contains(all, tc.want) {
				t.Fatalf("rendered output lacks %q", tc.want)
			}
			if n := strings.Count(all, "name: SLUICE_LOG_LEVEL\n"); n > 1 {
				t.Fatalf("SLUICE_LOG_LEVEL set %d times", n)
			}
			for _, doc := range r.docs {
				if _, err := decode(t, doc); err != nil {
					t.Errorf("strict decode: %v", err)
				}
			}
		})
	}
}
