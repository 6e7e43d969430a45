#!/usr/bin/env bash
# Validation throughput on one core: a typical Patient and a laboratory
# Observation against their base definitions, then against the EDS profiles.
# Usage: REPEAT=20000 bash tests/bench/validate_bench.sh (after make build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
eds="${EDS_BIN:-$here/../../build/release/eds}"
repeat="${REPEAT:-20000}"
run() { taskset -c 0 "$eds" validate --repeat "$repeat" "$@" 2>/dev/null | grep 'per second'; }
echo "base definitions:"
run "$here/validate_patient.json" "$here/validate_observation.json"
echo "with the EDS profiles:"
run --profile https://eds.fse.it/fhir/StructureDefinition/eds-patient "$here/validate_patient.json"
run --profile https://eds.fse.it/fhir/StructureDefinition/eds-lab-observation "$here/validate_observation.json"
