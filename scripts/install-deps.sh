#!/usr/bin/env bash
# Installs what zkpilot needs on Debian: ZooKeeper 3.9.5 (the default) and 3.8.6 from Maven
# Central, Debian's ZooKeeper package (3.8.0, the legacy install the version matrix still tests)
# with the jars that make its logging and AdminServer work, a JRE, Maven, and checks for the Rust
# toolchain.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
[ -f /usr/share/java/servlet-api.jar ] || missing+=(libservlet-api-java)
[ -f /usr/share/java/slf4j-log4j12.jar ] || missing+=(libslf4j-java)
[ -f /usr/share/java/log4j-1.2.jar ] || missing+=(liblog4j1.2-java)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
# javac: the Curator test client (crates/cli/tests/it/clients/curator-probe) is compiled by Maven, which
# needs a JDK; Debian's maven package pulls in only a JRE.
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
# Maven: fetches the Apache releases (scripts/install-zookeeper.sh) and builds the Curator and
# Kafka test clients.
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# nft: the chaos suite's one-member network partitions (per-uid rules on loopback).
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
# openssl: the TLS tests verify every member's certificate with `openssl s_client`.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# chromium: the status-page test renders the page headless and keeps a screenshot.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# moto (the AWS emulator the AWS backend is tested against; pinned: the tests run it through a
# wrapper around its WSGI app, crates/testkit/src/moto_serial.py), cfn-lint, and kazoo (the
# Python ZooKeeper client the upgrade test loads the ensemble with), in a venv of our own.
VENV="${ZKPILOT_VENV:-$HOME/.cache/zkpilot/venv}"
if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/cfn-lint" ] || ! "$VENV/bin/python" -c 'import kazoo' 2>/dev/null; then
  # Debian's python3 has the venv module but needs python3-venv (ensurepip) to create one.
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  echo "installing moto[server], cfn-lint and kazoo into $VENV" >&2
  python3 -m venv "$VENV"
  PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q 'moto[server]==5.2.5' cfn-lint 'kazoo>=2.10'
fi

# Apache's releases, from Maven Central into $HOME/.cache/zkpilot/zookeeper-<version>/.
"$(dirname "$0")/install-zookeeper.sh" 3.9.5 3.8.6

# The Java test clients' dependencies and build plugins (Curator 5.9, Kafka 3.9.1), into the same
# Maven repository, so that a test run downloads nothing; the tests only compile them.
for pom in "$(dirname "$0")"/../crates/cli/tests/it/clients/*/pom.xml; do
  if ! mvn -q -B -ntp -f "$pom" -Dmaven.repo.local="$HOME/.cache/zkpilot/m2" dependency:go-offline >/tmp/zkpilot-mvn-offline.log 2>&1; then
    echo "error: fetching the dependencies of $pom failed:" >&2
    tail -n 30 /tmp/zkpilot-mvn-offline.log >&2
    exit 1
  fi
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: the Rust toolchain (cargo) is required; install it with rustup (https://rustup.rs)" >&2
  exit 1
fi
