#!/bin/sh
# Install the shells the completion tests drive (bash, zsh, fish) from Debian
# packages, skipping those already present. Does nothing unless running as root
# on a machine with apt-get (elsewhere the tests skip, or fail when CI=true).
set -eu

missing=""
for sh in bash zsh fish; do
    command -v "$sh" >/dev/null 2>&1 || missing="$missing $sh"
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-shells: missing:$missing (not root or no apt-get; completion tests for them skip outside CI)" >&2
    exit 0
fi
echo "install-shells: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
