#!/usr/bin/env bash
# Installs one Apache ZooKeeper release from Maven Central as a tarball-equivalent home:
#   $HOME/.cache/zkpilot/zookeeper-<version>/lib/*.jar
# i.e. what the binary tarball's lib/ holds (zookeeper, jute, netty, jetty for the AdminServer,
# logback, snappy, metrics-core, commons-cli/io). The zookeeper artifact marks the AdminServer's
# and logging's jars `provided`/`optional`, so they are named here and versioned by importing the
# release's own parent POM (its dependencyManagement is what the tarball was built with).
#
# Idempotent and offline once cached: a finished home carries `.complete` and is left alone; the
# Maven repository lives under $HOME/.cache/zkpilot/m2; a home is assembled beside its final
# place and renamed in, so an interrupted run never leaves a half home that looks whole.
#
#   scripts/install-zookeeper.sh 3.9.5 [3.8.6 ...]
set -euo pipefail

CACHE="${ZKPILOT_CACHE:-$HOME/.cache/zkpilot}"
M2="$CACHE/m2"

for version in "$@"; do
  case "$version" in
    3.[5-9].[0-9]|3.[5-9].[0-9][0-9]|3.1[0-9].[0-9]) ;;
    *) echo "error: install-zookeeper.sh: '$version' is not a ZooKeeper 3.5+ release number (e.g. 3.9.5)" >&2; exit 2 ;;
  esac
  home="$CACHE/zookeeper-$version"
  if [ -f "$home/.complete" ]; then
    continue
  fi
  echo "installing ZooKeeper $version from Maven Central into $home" >&2
  work="$(mktemp -d "$CACHE/.zookeeper-$version.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>zkpilot</groupId><artifactId>zookeeper-home</artifactId><version>$version</version>
  <packaging>pom</packaging>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.apache.zookeeper</groupId><artifactId>parent</artifactId><version>$version</version><type>pom</type><scope>import</scope></dependency>
  </dependencies></dependencyManagement>
  <dependencies>
    <dependency><groupId>org.apache.zookeeper</groupId><artifactId>zookeeper</artifactId><version>$version</version></dependency>
    <dependency><groupId>commons-cli</groupId><artifactId>commons-cli</artifactId></dependency>
    <dependency><groupId>ch.qos.logback</groupId><artifactId>logback-classic</artifactId></dependency>
    <dependency><groupId>org.eclipse.jetty</groupId><artifactId>jetty-server</artifactId></dependency>
    <dependency><groupId>org.eclipse.jetty</groupId><artifactId>jetty-servlet</artifactId></dependency>
    <dependency><groupId>org.eclipse.jetty</groupId><artifactId>jetty-client</artifactId></dependency>
    <dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-databind</artifactId></dependency>
    <dependency><groupId>io.dropwizard.metrics</groupId><artifactId>metrics-core</artifactId></dependency>
    <dependency><groupId>org.xerial.snappy</groupId><artifactId>snappy-java</artifactId></dependency>
  </dependencies>
</project>
EOF
  if ! mvn -B -ntp -f "$work/pom.xml" -Dmaven.repo.local="$M2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/home/lib" >"$work/mvn.log" 2>&1; then
    echo "error: Maven could not fetch ZooKeeper $version (org.apache.zookeeper:zookeeper:$version and its dependencies); its log:" >&2
    tail -n 30 "$work/mvn.log" >&2
    exit 1
  fi
  [ -f "$work/home/lib/zookeeper-$version.jar" ] || { echo "error: Maven produced no zookeeper-$version.jar" >&2; exit 1; }
  cp "$work/pom.xml" "$work/home/pom.xml"
  touch "$work/home/.complete"
  rm -rf "$home"
  mv "$work/home" "$home"
  rm -rf "$work"
  trap - EXIT
done
