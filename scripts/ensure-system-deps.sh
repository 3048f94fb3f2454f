#!/usr/bin/env bash
# Make sure the system tools orderdeck needs are present: Java 17+ and Maven (to run and
# install the local Apache Kafka) and, for the test suite, Debian's kcat and PostgreSQL (the
# suite runs its own server with the package's initdb and pg_ctl, not the system's cluster).
#
#   scripts/ensure-system-deps.sh            java + maven
#   scripts/ensure-system-deps.sh --test     java + maven + kcat + postgresql
#
# Anything missing is installed with apt-get when we are root on a Debian-like system;
# otherwise the script says what to install and (for Java/Maven, and PostgreSQL unless
# ORDERDECK_TEST_POSTGRES names a server to test against) fails.
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

missing=()
java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)\?.*/\1/p' | head -n1)
  [[ -n "$major" && "$major" -ge 17 ]]
}
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off the PATH.
postgres_ok() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [[ -x "$bin/initdb" && -x "$bin/pg_ctl" ]] && return 0
  done
  return 1
}
if [[ $want_test == 1 ]]; then
  command -v kcat >/dev/null 2>&1 || missing+=(kcat)
  # ORDERDECK_TEST_POSTGRES=URL: the suite uses that server and needs no local binaries.
  [[ -n "${ORDERDECK_TEST_POSTGRES:-}" ]] || postgres_ok || missing+=(postgresql)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi

echo "Please install: ${missing[*]} (needs root / apt-get)" >&2
for package in "${missing[@]}"; do
  case "$package" in
    kcat) echo "Continuing without kcat: its test will be skipped." >&2 ;;
    postgresql)
      echo "The PostgreSQL tests need initdb and pg_ctl, or ORDERDECK_TEST_POSTGRES=URL." >&2
      exit 1
      ;;
    *) exit 1 ;;
  esac
done
