#!/usr/bin/env bash
# Make sure the system tools orderdeck needs are present: Java 17+ and Maven (to run and
# install the local Apache Kafka) and, for the test suite, Debian's kcat.
#
#   scripts/ensure-system-deps.sh            java + maven
#   scripts/ensure-system-deps.sh --test     java + maven + kcat
#
# Anything missing is installed with apt-get when we are root on a Debian-like system;
# otherwise the script says what to install and (for Java/Maven) fails.
set -euo pipefail

want_kcat=0
[[ "${1:-}" == "--test" ]] && want_kcat=1

missing=()
java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)\?.*/\1/p' | head -n1)
  [[ -n "$major" && "$major" -ge 17 ]]
}
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if [[ $want_kcat == 1 ]] && ! command -v kcat >/dev/null 2>&1; then
  missing+=(kcat)
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
  [[ "$package" == kcat ]] || exit 1
done
echo "Continuing without kcat: its test will be skipped." >&2
