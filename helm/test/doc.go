// Package charttest tests the Helm chart in ../sluice. It is a module of its
// own so that the Helm SDK and the Kubernetes API modules stay out of Sluice's
// go.mod.
//
// The tests render the chart with the Helm Go SDK (what `helm template` does)
// for every values file in ../sluice/ci, with and without the optional APIs
// (monitoring.coreos.com, keda.sh) in the capabilities, and then:
//
//   - decode every rendered document strictly: built-in kinds into the
//     Kubernetes API types (an unknown or misspelled field fails), custom
//     resources against the structural schema of their CRD, taken from the
//     Go module of the project that ships it (testdata/crds.txt);
//   - check the invariants the API types cannot: selectors match the pod
//     labels, HPA xor KEDA, the grace period outlasts the drain, secrets are
//     only referenced, the preStop hook drains;
//   - check that values.yaml, values.schema.json and the SLUICE_* table in
//     templates/_config.tpl agree, and that the schema refuses what it should;
//   - check that the dashboard shipped in the chart is docs/grafana/sluice.json.
//
// With SLUICEDEV_RENDER_DIR set, TestMatrix also writes each rendered case to
// $SLUICEDEV_RENDER_DIR/<case>.yaml: scripts/k8s.sh applies them to a real API
// server with `kubectl apply --dry-run=server`.
package charttest
