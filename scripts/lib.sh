# Shared by scripts/demo and scripts/test: installs the Debian packages Stet needs when they are
# missing (apt-get update once, then apt-get install -y), as root or through sudo.
need_packages() {
  local missing=()
  for entry in "$@"; do
    local pkg=${entry%%:*} probe=${entry#*:}
    if ! eval "$probe" >/dev/null 2>&1; then missing+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# What building and testing Stet needs on a fresh Debian machine with Swift.
STET_PACKAGES=(
  "pkg-config:command -v pkg-config"
  "libssl-dev:pkg-config --exists libcrypto"
  "openssl:command -v openssl"
  "git:command -v git"
  "python3:command -v python3"
  "restic:command -v restic"
  "etcd-server:command -v etcd"
  "etcd-client:command -v etcdctl"
  "prometheus-alertmanager:command -v prometheus-alertmanager"
  "prometheus:command -v promtool"
  "chromium:command -v chromium"
  "tzdata:test -e /usr/share/zoneinfo/Europe/Berlin"
  "libc-bin:command -v zdump"
)
