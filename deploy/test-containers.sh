#!/usr/bin/env bash
# The container stack, built and run for real with podman (root; CI runs it; about 20 minutes
# cold). From any directory:  bash deploy/test-containers.sh   (or make test-containers)
#
#  1. installs what it needs from Debian when missing (podman, runc, debootstrap, iproute2,
#     python3-yaml) and drops podman's default nofile ulimit in /etc/containers/containers.conf;
#  2. makes a Debian bookworm base image with debootstrap (no registry can be pulled from;
#     deploy/podman/make-base-image.sh), reused while it exists;
#  3. builds every image of deploy/ from the repository's Dockerfiles with BASE_IMAGE set to that
#     base, with the host's pip configuration mounted read-only (never copied into a layer), plus
#     a Postgres stand-in for postgres:15 (deploy/podman/Dockerfile.postgres); checks that the
#     user-code image has no CUDA library nor test tool and that no pip configuration was left;
#  4. starts deploy/docker-compose.yml (deploy/podman/compose_podman.py: one podman run per
#     service, translated from the compose file) with the TLC months of TAXI_DATA_SOURCE mounted
#     read-only into user_code, launches prepare_month[2024-01] and taxi_pipeline[2024-02] (one
#     evaluation per model) through the webserver's GraphQL API and asserts the run, its events
#     in Postgres and the champion in MLflow (deploy/podman/check_stack.py), then serves the
#     champion from a container of the user-code image and POSTs /invocations;
#  5. removes every container, volume and the network namespace it made, by name, also on
#     failure. Images stay (cached layers make the next run fast): TAXI_CT_REMOVE_IMAGES=1.
#
# TAXI_CT_PREFIX (taxi-ct) names images, containers, volumes and the network namespace;
# TAXI_DATA_SOURCE: a folder of {taxi}_tripdata_YYYY-MM.parquet (default ../shared/data/nyc-tlc);
# TAXI_CT_REBUILD_BASE=1 remakes the base image; TAXI_CT_KEEP=1 leaves the stack running.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
prefix=${TAXI_CT_PREFIX:-taxi-ct}
month=2024-02
training_month=2024-01
base_image="localhost/$prefix/debian-base:bookworm"
postgres_image="localhost/$prefix/postgres:15"
podman=(podman --runtime runc)  # crun fails on these machines' cgroups
compose=(/usr/bin/python3 deploy/podman/compose_podman.py --prefix "$prefix")
started=$(date +%s)
phase_start=$started

say() { printf '== %s\n' "$*"; }
lap() {  # lap_s = seconds since the previous lap
  local now; now=$(date +%s); lap_s=$((now - phase_start)); phase_start=$now
}

if [ "$(id -u)" != 0 ]; then
  echo "test-containers: run as root (podman runs rootful containers here; debootstrap needs root)" >&2
  exit 1
fi

# --- 1. what the machine needs -----------------------------------------------------------------
missing=()
command -v podman > /dev/null || missing+=(podman)
command -v runc > /dev/null || missing+=(runc)
command -v debootstrap > /dev/null || missing+=(debootstrap)
command -v ip > /dev/null || missing+=(iproute2)
/usr/bin/python3 -c 'import yaml' 2> /dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
conf=/etc/containers/containers.conf
if ! grep -qs '^[[:space:]]*default_ulimits' "$conf"; then
  # podman's default nofile ulimit cannot be set in these sandboxes: run with the host's limits.
  mkdir -p "$(dirname "$conf")"
  if grep -qs '^\[containers\]' "$conf"; then
    sed -i 's/^\[containers\]/[containers]\ndefault_ulimits = []/' "$conf"
  else
    printf '\n[containers]\ndefault_ulimits = []\n' >> "$conf"
  fi
  say "set default_ulimits = [] in $conf"
fi

data=${TAXI_DATA_SOURCE:-$repo/../shared/data/nyc-tlc}
if [ ! -f "$data/green_tripdata_$month.parquet" ] || [ ! -f "$data/green_tripdata_$training_month.parquet" ]; then
  echo "test-containers: TAXI_DATA_SOURCE=$data must be a folder holding green_tripdata_$training_month.parquet and green_tripdata_$month.parquet" >&2
  exit 1
fi
data=$(cd "$data" && pwd)

work=$(mktemp -d "/tmp/$prefix.XXXXXX")
# Throwaway passwords of this run's stack (compose's deploy/.env), in the run's own folder.
env_file="$work/stack.env"
(
  umask 077
  for name in POSTGRES_PASSWORD DAGSTER_PG_PASSWORD MLFLOW_PG_PASSWORD; do
    echo "$name=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  done > "$env_file"
)
compose+=(--env-file "$env_file")
status=failed
cleanup() {
  if [ "$status" != passed ]; then
    for service in postgres mlflow user_code webserver daemon scoring; do
      if "${podman[@]}" container exists "$prefix-$service" 2> /dev/null; then
        echo "--- last log lines of $prefix-$service"
        "${podman[@]}" logs --tail 25 "$prefix-$service" 2>&1 | cut -c1-400 || true
      fi
    done
  fi
  if [ "${TAXI_CT_KEEP:-}" = 1 ]; then
    say "stack left running (TAXI_CT_KEEP=1); remove it with: /usr/bin/python3 deploy/podman/compose_podman.py --prefix $prefix down"
  else
    say "removing the stack (containers, volumes, network namespace $prefix)"
    "${compose[@]}" down || true
  fi
  if [ "${TAXI_CT_REMOVE_IMAGES:-}" = 1 ]; then
    for image in $("${podman[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/$prefix/" || true); do
      "${podman[@]}" rmi -f "$image" > /dev/null && echo "  removed image $image"
    done
  fi
  if [ "$status" = passed ]; then
    rm -rf "$work"
  else
    rm -f "$env_file"
    echo "build logs kept in $work"
  fi
  say "test-containers: $status in $(( $(date +%s) - started )) s"
}
trap cleanup EXIT
trap 'exit 130' INT  # bash runs the EXIT trap on a signal only through a trap of its own
trap 'exit 143' TERM
"${compose[@]}" down > /dev/null 2>&1 || true  # leftovers of an interrupted run

# --- 2. the base image -------------------------------------------------------------------------
if [ "${TAXI_CT_REBUILD_BASE:-}" != 1 ] && "${podman[@]}" image exists "$base_image"; then
  say "base image $base_image exists (TAXI_CT_REBUILD_BASE=1 remakes it)"
else
  say "making the base image $base_image (debootstrap bookworm)"
  bash deploy/podman/make-base-image.sh "$base_image"
  lap
  say "base image made in $lap_s s"
fi
lap

# --- 3. the images -----------------------------------------------------------------------------
# pip inside the builds reaches the host's package registry through the host's own pip
# configuration, bind-mounted read-only for the build only: the config files, the PIP_*
# variables (as a config file at the highest file precedence, pip's "site" file), and the
# local folders and certificate files they name.
mounts=()    # podman build -v arguments
mounted=()   # host paths mounted
targets=()   # where they appear in the build
mount_ro() {
  local path=$1 target=${2:-$1} seen
  [ -e "$path" ] || return 0
  for seen in "${mounted[@]}"; do
    [[ $path == "$seen" || $path == "$seen"/* ]] && return 0
  done
  mounted+=("$path")
  targets+=("$target")
  mounts+=(-v "$path:$target:ro")
}
# The user's files under /root (builds run as root), the system-wide ones at their own path.
for path in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip" "$HOME/.pip"; do
  case $path in
    "$HOME"/*) mount_ro "$path" "/root/${path#"$HOME"/}" ;;
    *) mount_ro "$path" ;;
  esac
done
env_conf="$work/pip-env.conf"
{
  echo "[global]"
  { env | grep '^PIP_' || true; } | sort | while IFS='=' read -r key value; do
    key=${key#PIP_}
    key=${key,,}
    echo "${key//_/-} = $value"
  done
} > "$env_conf"
site_prefix=$("${podman[@]}" run --rm --network none "$base_image" python -c 'import sys; print(sys.prefix)')
mounts+=(-v "$env_conf:$site_prefix/pip.conf:ro")
targets+=("$site_prefix/pip.conf")
named=$(cat "$env_conf" /etc/pip.conf /etc/xdg/pip/*.conf "$HOME"/.config/pip/*.conf "$HOME"/.pip/*.conf 2> /dev/null \
  | grep -vE '^[[:space:]]*[#;]' | grep -oE '(file://)?/[^ ,"'\'']+' | sed -e 's|^file://||' -e 's|/simple/*$||' | sort -u || true)
for path in $named; do
  mount_ro "$path"
done
printf '  pip configuration mounted read-only: %s\n' "$(printf '%s ' "${mounted[@]}")"

say "building $postgres_image (stand-in for postgres:15: Debian's PostgreSQL 15)"
"${podman[@]}" build --network host -f deploy/podman/Dockerfile.postgres --ignorefile deploy/Dockerfile.dockerignore \
  --build-arg "BASE_IMAGE=$base_image" -t "$postgres_image" . > "$work/postgres-build.log" 2>&1 \
  || { tail -40 "$work/postgres-build.log"; exit 1; }
say "building the compose file's images"
BASE_IMAGE=$base_image "${compose[@]}" build --log-dir "$work/build-logs" -- --network host "${mounts[@]}"
lap
say "images built in $lap_s s"

user_code="localhost/$prefix/taxi-assets-user-code:latest"
forbidden=$("${podman[@]}" run --rm --network none "$user_code" pip list --format=freeze \
  | grep -iE '^(nvidia-|pytest|moto|ruff|cfn-lint|boto3|dask|distributed)' || true)
if [ -n "$forbidden" ]; then
  echo "test-containers: the user-code image carries CUDA libraries or test tools: $forbidden" >&2
  exit 1
fi
# The build mounts leave their mount points behind as empty files and folders; none that the
# base image lacks may hold anything (the configuration and package folders stay on the host).
new_targets=$("${podman[@]}" run --rm --network none --entrypoint sh "$base_image" -c \
  'for p in "$@"; do [ -e "$p" ] || echo "$p"; done' sh "${targets[@]}")
for image in "$user_code" "localhost/$prefix/taxi-assets-dagster:latest" "localhost/$prefix/taxi-assets-mlflow:latest"; do
  # shellcheck disable=SC2086  # one path a word
  leaked=$("${podman[@]}" run --rm --network none --user root --entrypoint sh "$image" -c '
    for p in "$@"; do [ -e "$p" ] || continue; if [ -d "$p" ]; then find "$p" -mindepth 1 ! -type d | head -3; elif [ -s "$p" ]; then echo "$p"; fi; done' \
    sh $new_targets)
  if [ -n "$leaked" ]; then
    echo "test-containers: $image holds build-time pip configuration: $leaked" >&2
    exit 1
  fi
done
echo "  user-code image: no nvidia-* package, no test tool; no pip configuration left in any image"

# --- 4. the stack ------------------------------------------------------------------------------
# The compose variables of this run (the shell's environment wins over the env file, as in
# compose): months from the mounted folder, one evaluation per model, no bootstrap ingestion
# by the new-month sensor (this run launches its own months).
stack_env=(env TAXI_DATA_SOURCE=/srv/nyc-tlc TAXI_TYPE=green TAXI_MAX_EVALUATIONS=1 TAXI_BOOTSTRAP_MONTHS=0 TAXI_EXECUTOR=multiprocess)
say "starting the stack of deploy/docker-compose.yml (network namespace $prefix)"
"${stack_env[@]}" "${compose[@]}" --mount "user_code=$data:/srv/nyc-tlc:ro" up
lap
say "stack started in $lap_s s"

# DAGSTER_PG_* as the Dagster services get them, for the Postgres query.
pg_env=(-e DAGSTER_PG_HOST=postgres -e DAGSTER_PG_PORT=5432 -e DAGSTER_PG_USER=dagster -e DAGSTER_PG_DB=dagster
        -e "DAGSTER_PG_PASSWORD=$(sed -n 's/^DAGSTER_PG_PASSWORD=//p' "$env_file")")
check=(-v "$repo/deploy/podman/check_stack.py:/opt/check_stack.py:ro")
say "launching prepare_month[$training_month] and taxi_pipeline[$month] through the webserver's GraphQL API"
"${stack_env[@]}" "${compose[@]}" run "${pg_env[@]}" "${check[@]}" check user_code -- \
  python /opt/check_stack.py pipeline "$month" "$training_month"
lap
say "pipeline checked in $lap_s s"

say "serving models:/taxi-trip-duration-green@champion from a user-code container"
"${stack_env[@]}" "${compose[@]}" run -d -e MLFLOW_TRACKING_URI=http://mlflow:5000 scoring user_code -- \
  mlflow models serve -m "models:/taxi-trip-duration-green@champion" --env-manager local -h 0.0.0.0 -p 5001 > /dev/null
"${stack_env[@]}" "${compose[@]}" run "${check[@]}" score-check user_code -- \
  python /opt/check_stack.py score http://127.0.0.1:5001
lap
say "scoring checked in $lap_s s"

say "image sizes"
for image in "$base_image" "$postgres_image" "$user_code" "localhost/$prefix/taxi-assets-dagster:latest" "localhost/$prefix/taxi-assets-mlflow:latest"; do
  printf '  %-55s %s\n' "$image" "$("${podman[@]}" image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
done
status=passed
