#!/usr/bin/env bash
# Run by .ci/run (docs/operations.md section 8.1): the container image is tested as users get it.
# container-check.sh - build the project's Dockerfile with podman and smoke-test the container over HTTP,
# on a Debian machine with no Docker engine and no access to container registries.
#
# Usage: container-check.sh [--dockerfile PATH] [--context DIR] [--port CONTAINER_PORT] [--path /healthz]
#                           [--run-arg ARG ...] [--keep] [--no-cache]
# Exit: 0 PASS (health path answered 2xx), 1 FAIL, 2 usage/setup error, 3 base image with no local stand-in.
# Env:  CONTAINER_CHECK_CACHE (default /var/tmp/container-check), CONTAINER_CHECK_WAIT (seconds, default 30).
set -euo pipefail
export LC_ALL=C

CONTEXT=. DOCKERFILE='' PORT='' HPATH=/healthz KEEP=0 RUN_ARGS=() BUILD_OPTS=()
usage() { sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  [[ $1 == --*=* ]] && set -- "${1%%=*}" "${1#*=}" "${@:2}"     # --opt=value is the same as --opt value
  case $1 in
    --dockerfile|--context|--port|--path|--run-arg) (($# >= 2)) || usage ;;&
    --dockerfile) DOCKERFILE=$2; shift 2 ;;
    --context) CONTEXT=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --path) HPATH=$2; shift 2 ;;
    --run-arg) RUN_ARGS+=("$2"); shift 2 ;;    # one `podman run` option each: --run-arg=-eLOG_LEVEL=debug
    --keep) KEEP=1; shift ;;
    --no-cache) BUILD_OPTS+=(--no-cache); shift ;;      # rebuild every layer (npm ci included)
    *) echo "container-check: unknown argument: $1" >&2; usage ;;
  esac
done
[[ -n $DOCKERFILE ]] || { DOCKERFILE=$CONTEXT/Dockerfile; [[ -f $DOCKERFILE ]] || DOCKERFILE=$CONTEXT/Containerfile; }

CACHE=${CONTAINER_CHECK_CACHE:-/var/tmp/container-check} WAIT=${CONTAINER_CHECK_WAIT:-30} SUITE=bookworm
DEBIAN_TAGS=(debian:bookworm-slim debian:bookworm debian:12-slim debian:12)
NODE_TAGS=(node:20-bookworm-slim node:20-slim node:20 node:20-bookworm node:22-bookworm-slim node:22-slim node:lts-slim node:lts)
IMAGE='' SIZE='' BUILD_S='' STOP_S='' CNAME=''
say() { printf 'container-check: %s\n' "$*"; }
summary() { say "$1 image=${IMAGE:-none} size=${SIZE:--} build=${BUILD_S:--} stop=${STOP_S:--}"; }
fail() { summary "FAIL ($1)"; exit "${2:-1}"; }             # fail REASON [EXIT_CODE]
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
indent() { awk '{ print "  | " $0 }'; }
# podman, minus the harmless errors about healthcheck timers that it prints on hosts not booted with systemd.
pm() { { podman "$@" 2>&1 1>&3 3>&- | { grep -v 'systemd connection' >&2 || true; }; } 3>&1; }
cleanup() { if [[ -n $CNAME && $KEEP == 0 ]]; then pm rm -f -t 0 "$CNAME" >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

[[ $EUID -eq 0 ]] || fail "must run as root: it uses apt-get, debootstrap and rootful podman" 2
[[ -f $DOCKERFILE ]] || fail "no Dockerfile at $DOCKERFILE" 2
command -v node >/dev/null || fail "the host needs node: the Node stand-in image is made from it" 2

# Base images the Dockerfile names (not its own stages or scratch), with ARG defaults from before the first FROM.
mapfile -t FROMS < <(awk '
  toupper($1) == "ARG" && !seen { split($2, kv, "="); gsub(/["\047]/, "", kv[2]); arg[kv[1]] = kv[2] }
  toupper($1) == "FROM" { seen = 1; img = ""; for (i = 2; i <= NF; i++) if ($i !~ /^--/) { img = $i; break }
    for (k in arg) { gsub("\\$\\{" k "\\}", arg[k], img); gsub("\\$" k, arg[k], img) }
    if (!(tolower(img) in stage) && tolower(img) != "scratch") print img
    if (tolower($(i + 1)) == "as") stage[tolower($(i + 2))] = 1 }' "$DOCKERFILE")
for img in "${FROMS[@]}"; do
  case ${img,,} in
    *alpine*) say "FROM $img: Alpine (musl) bases cannot be stood in for; the local stand-in is Debian $SUITE."
              say "Check a *-bookworm-slim variant of the Dockerfile here, or build this one where a registry is reachable."
              fail "no stand-in for $img" 3 ;;
    *'$'*) fail "FROM $img uses a build ARG with no default" 3 ;;
  esac
done

# 1. Debian packages: install what is missing; refresh the apt lists only if the first attempt fails.
mkdir -p "$CACHE/logs"; missing=()
for p in podman runc debootstrap catatonit netavark iptables uidmap curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"; export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }; } \
    >"$CACHE/logs/apt.log" 2>&1 || fail "apt-get install failed (log: $CACHE/logs/apt.log)" 2
fi

# 2. All podman state lives under $CACHE. runc + cgroupfs because crun rejects this host's hybrid cgroups;
#    explicit ulimits because the defaults fail setrlimit here. Runtime state from an earlier boot is dropped.
RUN_DIR=$CACHE/run boot=$(cat /proc/sys/kernel/random/boot_id)
if [[ ! -f $RUN_DIR/boot_id || $(cat "$RUN_DIR/boot_id") != "$boot" ]]; then
  rm -rf --one-file-system "$RUN_DIR"; mkdir -p "$RUN_DIR"; echo "$boot" >"$RUN_DIR/boot_id"
fi
cat >"$CACHE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUN_DIR/libpod"
[network]
network_config_dir = "$CACHE/networks"
EOF
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$CACHE/storage" "$RUN_DIR/storage" \
  >"$CACHE/storage.conf"
export CONTAINERS_CONF=$CACHE/containers.conf CONTAINERS_STORAGE_CONF=$CACHE/storage.conf
exec 9>"$CACHE/lock"; flock -w 900 9 || fail "another container-check holds $CACHE/lock" 2

# 3a. Debian base, once per machine: debootstrap from the mirror apt already uses, imported as debian:bookworm*.
if ! podman image exists "docker.io/library/${DEBIAN_TAGS[0]}"; then
  # shellcheck disable=SC2016  # $(REPO_URI) and $(RELEASE) are apt's placeholders
  mirror=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' \
    | awk -v s="$SUITE" '$2 == s && m == "" { m = $1 } END { print m }')
  mirror=${mirror:-http://deb.debian.org/debian} rootfs=$CACHE/rootfs t0=$EPOCHREALTIME log=$CACHE/logs/debootstrap.log
  say "building the Debian $SUITE base with debootstrap from $mirror (once per machine)"
  rm -rf --one-file-system "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" >"$log" 2>&1 \
    || { tail -n 5 "$log"; fail "debootstrap failed (log: $log)" 2; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - \
    "docker.io/library/${DEBIAN_TAGS[0]}" >>"$log" 2>&1 || fail "podman import failed (log: $log)" 2
  podman tag "docker.io/library/${DEBIAN_TAGS[0]}" "${DEBIAN_TAGS[@]/#/docker.io/library/}"
  rm -rf --one-file-system "$rootfs"
  say "Debian base ready in $(since "$t0")s"
fi

# 3b. Node stand-in: the host's node, npm and corepack on that base, a `node` user (uid 1000) and the official
#     image's entrypoint. Rebuilt when the host's node, npm, locally added CA certificates or this script change.
NODE_VER=$(node --version) NODE_BIN=$(readlink -f "$(command -v node)") NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[[ -f $NPM_DIR/package.json ]] || fail "cannot find the host's npm install directory" 2
NPM_VER=$(node -p "require('$NPM_DIR/package.json').version")
EXTRA_CA=(/usr/local/share/ca-certificates/*.crt); [[ -e ${EXTRA_CA[0]} ]] || EXTRA_CA=()
stamp=$(sha256sum "$0" "$NODE_BIN" "$NPM_DIR/package.json" "${EXTRA_CA[@]}" | sha256sum | cut -c1-16)
if [[ $(podman image inspect -f '{{index .Labels "container-check.stamp"}}' "docker.io/library/${NODE_TAGS[0]}" \
        2>/dev/null) != "$stamp" ]]; then
  ctx=$CACHE/node-context t0=$EPOCHREALTIME log=$CACHE/logs/node-stand-in.log mods=$(dirname "$NPM_DIR")
  rm -rf "$ctx"; mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/lib/node_modules" "$ctx/usr/local/share/ca-certificates"
  cp "$NODE_BIN" "$ctx/usr/local/bin/node"
  for m in npm/bin/npm-cli.js npm/bin/npx-cli.js corepack/dist/corepack.js; do    # npm, npx, corepack
    [[ -f $mods/$m ]] || continue
    [[ -e $ctx/usr/local/lib/node_modules/${m%%/*} ]] || cp -a "$mods/${m%%/*}" "$ctx/usr/local/lib/node_modules/"
    ln -s "../lib/node_modules/$m" "$ctx/usr/local/bin/$(basename "$m" .js | sed 's/-cli$//')"
  done
  # shellcheck disable=SC2016  # the official image's entrypoint: run node if $1 is a flag or not a command
  printf '%s\n' '#!/bin/sh' 'set -e' 'if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] ||' \
    '  { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then set -- node "$@"; fi' 'exec "$@"' >"$ctx/usr/local/bin/docker-entrypoint.sh"
  chmod 755 "$ctx/usr/local/bin/docker-entrypoint.sh"
  # This host's outbound TLS may be re-signed by a local CA: trust it inside builds too, as the host's node does.
  ca_env=; if ((${#EXTRA_CA[@]})); then
    cp "${EXTRA_CA[@]}" "$ctx/usr/local/share/ca-certificates/"; ca_env="ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
  fi
  cat >"$ctx/Containerfile" <<EOF
FROM docker.io/library/${DEBIAN_TAGS[0]}
COPY usr/ /usr/
RUN update-ca-certificates >/dev/null && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash -m node
ENV NODE_VERSION=${NODE_VER#v}
$ca_env
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
EOF
  podman build --pull=never --format docker --label "container-check.stamp=$stamp" \
    --label "org.opencontainers.image.description=local stand-in: Debian $SUITE + host Node $NODE_VER" \
    -t "docker.io/library/${NODE_TAGS[0]}" "$ctx" >"$log" 2>&1 || fail "building the Node stand-in failed (log: $log)" 2
  podman tag "docker.io/library/${NODE_TAGS[0]}" "${NODE_TAGS[@]/#/docker.io/library/}"; rm -rf "$ctx"
  say "Node stand-in ready in $(since "$t0")s"
fi
flock -u 9
say "node:* tags here are a LOCAL STAND-IN: Debian $SUITE (debootstrap) + the host's Node $NODE_VER, npm $NPM_VER"
((${#EXTRA_CA[@]} == 0)) || say "the stand-in also trusts the host's extra CA certificates (NODE_EXTRA_CA_CERTS set)"
for img in "${FROMS[@]}"; do
  podman image exists "$img" || fail "no local stand-in for FROM $img (available: ${NODE_TAGS[*]} ${DEBIAN_TAGS[*]})" 3
  if [[ ${img,,} == *node:* && ${img,,} != *node:$NODE_MAJOR && ${img,,} != *node:${NODE_MAJOR}[.-]* ]]; then
    say "note: FROM $img runs on the stand-in's Node $NODE_VER, not the version its tag names"
  fi
done

# 4. Build (docker format keeps HEALTHCHECK), run on a free loopback port, poll the health path, stop, remove.
NAME=$(basename "$(cd "$CONTEXT" && pwd)" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_.\n-' '-')
IMAGE=localhost/container-check/$NAME:latest LOG=$CACHE/logs/$NAME-build.log t0=$EPOCHREALTIME
say "building $DOCKERFILE (context $CONTEXT) as $IMAGE"
if ! podman build --pull=never --format docker "${BUILD_OPTS[@]}" -f "$DOCKERFILE" -t "$IMAGE" "$CONTEXT" >"$LOG" 2>&1; then
  BUILD_S=$(since "$t0")s; tail -n 30 "$LOG" | indent
  grep -qE 'ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|CERT_|UNABLE_TO_' "$LOG" \
    && say "the build seems unable to reach the npm registry or the apt mirror"
  fail "podman build failed (log: $LOG)"
fi
BUILD_S=$(since "$t0")s SIZE=$(podman image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=si --suffix=B)
say "built in $BUILD_S, size $SIZE, user '$(podman image inspect -f '{{.Config.User}}' "$IMAGE")' (log: $LOG)"
[[ -n $PORT ]] || PORT=$(podman image inspect -f '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' "$IMAGE" \
  | awk '{ sub("/.*", "", $1); print $1 }')
[[ -n $PORT ]] || fail "no --port given and the image EXPOSEs no port"
HOSTPORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
CNAME=cc-$NAME-$$
pm run -d --init --name "$CNAME" -p "127.0.0.1:$HOSTPORT:$PORT" "${RUN_ARGS[@]}" "$IMAGE" >/dev/null || fail "podman run failed"
URL=http://127.0.0.1:$HOSTPORT$HPATH BODY=$RUN_DIR/$CNAME.body code=000 reason='' t0=$EPOCHREALTIME deadline=$((SECONDS + WAIT))
say "started $CNAME (container port $PORT -> 127.0.0.1:$HOSTPORT); polling $URL for up to ${WAIT}s"
while :; do
  code=$(curl -s -m 2 -o "$BODY" -w '%{http_code}' "$URL" || true)
  [[ $code == 2?? ]] && break
  [[ $(podman inspect -f '{{.State.Running}}' "$CNAME") == true ]] || { reason="container exited"; break; }
  ((SECONDS < deadline)) || { reason="no 2xx from $HPATH within ${WAIT}s (last HTTP $code)"; break; }
  sleep 0.5
done
say "GET $HPATH -> HTTP $code after $(since "$t0")s"
if [[ -s $BODY ]]; then head -c 400 "$BODY" | indent; fi
rm -f "$BODY"
if [[ -z $reason && $(podman image inspect -f '{{.HealthCheck}}' "$IMAGE") != '<nil>' ]]; then
  if hc=$(pm healthcheck run "$CNAME" 2>&1); then say "image HEALTHCHECK: healthy"
  else say "image HEALTHCHECK: ${hc:-unhealthy}; its output:"; reason="the image's HEALTHCHECK command failed"
    podman inspect -f '{{range .State.Health.Log}}{{.Output}}{{"\n"}}{{end}}' "$CNAME" | tail -n 5 | indent; fi
fi
if [[ -n $reason ]]; then say "container logs (tail):"; podman logs --tail 30 "$CNAME" 2>&1 | indent; fi

if ((KEEP)); then
  say "left $CNAME running on 127.0.0.1:$HOSTPORT; remove it with: CONTAINERS_CONF=$CONTAINERS_CONF" \
      "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF podman rm -f $CNAME"
else
  running=$(podman inspect -f '{{.State.Running}}' "$CNAME")
  t0=$EPOCHREALTIME; pm stop -t 10 "$CNAME" >/dev/null || true; STOP_S=$(since "$t0")s
  ec=$(podman inspect -f '{{.State.ExitCode}}' "$CNAME")
  if [[ $running != true ]]; then STOP_S=-; say "the container had already exited (exit $ec)"
  elif [[ $ec == 137 ]]; then say "stop took $STOP_S: SIGTERM did not end the process, it was killed (exit 137)"
  else say "stop took $STOP_S: SIGTERM reached the process (exit $ec)"; fi
  pm rm "$CNAME" >/dev/null; CNAME=
fi
[[ -z $reason ]] || fail "$reason"
summary PASS
