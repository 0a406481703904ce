# Shared shell helpers for testbed component scripts. Source it; do not run it.
# Progress goes to stderr; stdout is reserved for `export NAME=value` lines.

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

# emit NAME VALUE: print one shell-quoted export line on stdout.
emit() { printf 'export %s=%q\n' "$1" "$2"; }

# pid_alive PIDFILE: true when the pid file names a running process.
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# stop_pidfile PIDFILE NAME: TERM the process, wait up to 20 s, then KILL; remove the file.
stop_pidfile() {
  local file="$1" name="$2" pid i
  if pid_alive "$file"; then
    pid="$(cat "$file")"
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds, printing progress.
wait_for() {
  local timeout="$1" what="$2" start=$SECONDS next=5
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start >= timeout)); then
      log "gave up waiting for $what after ${timeout}s"
      return 1
    fi
    if ((SECONDS - start >= next)); then
      log "still waiting for $what ($((SECONDS - start))s)"
      next=$((next + 5))
    fi
    sleep 0.2
  done
}

# ensure_apt PACKAGE...: install the Debian packages that are missing (needs root).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  if [[ -z "${PIPELINELIB_APT_UPDATED:-}" ]]; then
    "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
    export PIPELINELIB_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

# cache_dir TOOL VERSION: the per-version build cache directory (created).
cache_dir() {
  local dir="${PIPELINELIB_CACHE:-$HOME/.cache/pipelinelib}/$1/$2"
  mkdir -p "$dir"
  printf '%s\n' "$dir"
}
