#!/usr/bin/env bash
# Offline checks of the Terraform in infra/, run by `make infra-test` (and so
# `make test`). Nothing here reaches AWS or the internet:
#
#   1. terraform fmt -check
#   2. terraform init with the committed lock files (-lockfile=readonly), for
#      infra/ and examples/minimal: providers from a filesystem mirror when
#      one holds hashicorp/aws 5.100.0 (TF_PROVIDER_MIRROR, default
#      /opt/tf-plugins: offline), else per your Terraform CLI config
#      (TF_CLI_CONFIG_FILE, when that file exists), else from the registry
#   3. terraform validate, both
#   4. terraform test: tests/*.tftest.hcl against the mock aws provider
#   5. apply -> re-plan (must be empty) -> destroy against moto_server on
#      127.0.0.1, with tests/moto/check.py asking moto what really exists
#
# 4 and 5 run in parallel. Work happens in a temporary copy of infra/, so a
# terraform.tfvars or state of yours never leaks in and nothing is written here.
#
# Environment: INFRA_TEST_MOTO=0 skips step 5; INFRA_TEST_KEEP=1 keeps the
# temporary directory (logs, state) and prints where it is.
set -euo pipefail

INFRA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MIRROR=${TF_PROVIDER_MIRROR:-/opt/tf-plugins}
PROVIDER_DIR=$MIRROR/registry.terraform.io/hashicorp/aws/5.100.0
START=$SECONDS

fail() {
  echo "infra: FAILED: $*" >&2
  exit 1
}

# --- prerequisites, each named when missing ---------------------------------
command -v terraform >/dev/null || fail "terraform is not installed (need >= 1.9; this machine kind ships 1.11 in /usr/local/bin)"
tf_version=$(terraform version -json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["terraform_version"])') ||
  fail "cannot run terraform version"
python3 - "$tf_version" <<'EOF' || fail "terraform $tf_version is too old: need >= 1.9 (1.11 is tested)"
import sys
major, minor = (int(x) for x in sys.argv[1].split(".")[:2])
sys.exit(0 if (major, minor) >= (1, 9) else 1)
EOF
if [ "${INFRA_TEST_MOTO:-1}" != 0 ]; then
  command -v moto_server >/dev/null || fail "moto_server is not installed (Python moto[server]); set INFRA_TEST_MOTO=0 to skip the apply/destroy run"
  python3 -c 'import boto3' 2>/dev/null || fail "python3 cannot import boto3 (installed with moto); needed by tests/moto/check.py"
fi

export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
unset TF_DATA_DIR TF_WORKSPACE

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clickstream-infra-test.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"

# Where the AWS provider comes from (see 2. above).
if [ -d "$PROVIDER_DIR" ]; then
  printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$MIRROR" >"$WORK/terraformrc"
  export TF_CLI_CONFIG_FILE=$WORK/terraformrc
  provider_note="providers from the mirror $MIRROR"
elif [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ -f "$TF_CLI_CONFIG_FILE" ]; then
  provider_note="providers per $TF_CLI_CONFIG_FILE"
else
  unset TF_CLI_CONFIG_FILE # a setting naming a missing file only makes terraform warn
  provider_note="providers from the registry (no mirror at $MIRROR)"
fi
echo "infra: $provider_note"
MOTO_PID=
TEST_PID=
cleanup() {
  local rc=$?
  [ -n "$TEST_PID" ] && kill "$TEST_PID" 2>/dev/null && wait "$TEST_PID" 2>/dev/null
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  if [ "${INFRA_TEST_KEEP:-0}" = 1 ]; then
    echo "infra: kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# step NAME CMD...: runs CMD with its output in $LOGS/NAME.log; on failure
# shows the log and stops.
step() {
  local name=$1 t0=$SECONDS
  shift
  if "$@" >"$LOGS/$name.log" 2>&1; then
    echo "infra: ok   $name ($((SECONDS - t0))s)"
  else
    echo "infra: FAIL $name ($((SECONDS - t0))s); output:" >&2
    sed 's/^/    /' "$LOGS/$name.log" >&2
    fail "$name"
  fi
}

# A clean copy of the module: no .terraform, state or personal tfvars.
MODULE=$WORK/module
mkdir -p "$MODULE"
tar -C "$INFRA" --exclude=.terraform --exclude='*.tfstate*' --exclude=terraform.tfvars \
  --exclude='*.auto.tfvars' --exclude='*.tfplan' -cf - . | tar -C "$MODULE" -xf -
# Only the moto run merges the test override; terraform must not see it here.
[ -z "$(find "$MODULE" -maxdepth 1 -name '*override.tf*' -print -quit)" ] || fail "override files in infra/ would change what is tested"

step fmt terraform -chdir="$MODULE" fmt -check -recursive -diff
step init terraform -chdir="$MODULE" init -backend=false -lockfile=readonly -no-color
step validate terraform -chdir="$MODULE" validate -no-color
step init-example terraform -chdir="$MODULE/examples/minimal" init -backend=false -lockfile=readonly -no-color
step validate-example terraform -chdir="$MODULE/examples/minimal" validate -no-color

# --- terraform test (mock provider), in the background ----------------------
(cd "$MODULE" && terraform test -no-color) >"$LOGS/terraform-test.log" 2>&1 &
TEST_PID=$!
TEST_T0=$SECONDS

# --- apply -> re-plan -> destroy against moto_server ------------------------
moto_run() {
  local port tf=$WORK/moto dist=$WORK/dist
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$port" >"$LOGS/moto-server.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null && break
    kill -0 "$MOTO_PID" 2>/dev/null || fail "moto_server exited; see $LOGS/moto-server.log"
    sleep 0.3
  done

  # Only moto: no profile, no real credentials, no per-service endpoints
  # (a sourced .local/env would send S3 to MinIO).
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
  for v in $(env | sed -n 's/^\(AWS_ENDPOINT_URL_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

  # Small stand-in zips: moto stores functions, it never runs them here.
  mkdir -p "$dist" "$tf"
  python3 - "$dist" <<'EOF'
import sys, zipfile
for name in ["archive", "vectors", "metrics", "collector", "readapi"]:
    with zipfile.ZipFile(f"{sys.argv[1]}/lambda-{name}.zip", "w") as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\nexit 1\n")
EOF
  cp "$MODULE"/*.tf "$MODULE"/archive-columns.json "$MODULE"/.terraform.lock.hcl "$tf"/
  cp "$MODULE"/tests/moto/provider.tf "$MODULE"/tests/moto/moto_override.tf "$tf"/
  KMS_KEY_ARN=$(python3 "$MODULE/tests/moto/check.py" kms-key)
  export KMS_KEY_ARN
  local vars=(-var-file="$MODULE/tests/moto/moto.tfvars" -var "lambda_dist_dir=$dist" -var "kms_key_arn=$KMS_KEY_ARN")

  step moto-init terraform -chdir="$tf" init -lockfile=readonly -no-color
  step moto-apply terraform -chdir="$tf" apply -auto-approve -no-color "${vars[@]}"
  terraform -chdir="$tf" show -json >"$WORK/state.json"
  terraform -chdir="$tf" output -json >"$WORK/outputs.json"
  step moto-check-applied python3 "$MODULE/tests/moto/check.py" applied "$WORK/state.json" "$WORK/outputs.json"
  # 0 = no changes; 2 = drift, which fails the step.
  step moto-replan-empty terraform -chdir="$tf" plan -detailed-exitcode -no-color "${vars[@]}"
  MOTO_RESOURCES=$(terraform -chdir="$tf" state list | wc -l)
  step moto-destroy terraform -chdir="$tf" destroy -auto-approve -no-color "${vars[@]}"
  [ -z "$(terraform -chdir="$tf" state list)" ] || fail "resources left in state after destroy"
  step moto-check-destroyed python3 "$MODULE/tests/moto/check.py" destroyed clickstream
}

MOTO_RESOURCES=0
if [ "${INFRA_TEST_MOTO:-1}" != 0 ]; then
  moto_run
else
  echo "infra: skip moto apply/destroy (INFRA_TEST_MOTO=0)"
fi

if wait "$TEST_PID"; then
  TEST_PID=
  echo "infra: ok   terraform-test ($((SECONDS - TEST_T0))s, ran alongside the moto run)"
else
  TEST_PID=
  echo "infra: FAIL terraform-test; output:" >&2
  sed 's/^/    /' "$LOGS/terraform-test.log" >&2
  fail "terraform-test"
fi
summary=$(grep -E '^(Success|Failure)!' "$LOGS/terraform-test.log" | tail -1)

moto_note="moto skipped"
[ "$MOTO_RESOURCES" -gt 0 ] && moto_note="moto apply/re-plan/destroy of $MOTO_RESOURCES resources"
echo "infra: PASS in $((SECONDS - START))s — fmt, init, validate (module + example), terraform test ($summary), $moto_note"
