#!/bin/sh
# Install what the completion tests drive, from Debian packages: the shells bash,
# zsh and fish, and the bash-completion package (its helpers let the bash script
# keep ':' inside words). Skips what is present. Does nothing unless running as
# root on a machine with apt-get; the tests then skip a missing shell, except with
# CI=true, where a missing shell fails them.
set -eu

missing=""
for sh in bash zsh fish; do
    command -v "$sh" >/dev/null 2>&1 || missing="$missing $sh"
done
[ -f /usr/share/bash-completion/bash_completion ] || missing="$missing bash-completion"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-shells: missing:$missing (not root or no apt-get, not installed)" >&2
    exit 0
fi
echo "install-shells: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
