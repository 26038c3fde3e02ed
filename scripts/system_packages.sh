#!/usr/bin/env bash
# Installs the Debian packages `make test` needs, once: only what is missing, only when this user can.
#
#   scripts/system_packages.sh            install what is missing (root: apt-get; else sudo -n), or fail
#                                         at once with the one command to run
#   scripts/system_packages.sh --check    only say what is missing (exit 1 if anything is)
#
# Each line of NEEDED is "<file that proves it is installed> <Debian package> <what needs it>".
set -euo pipefail

NEEDED=(
  "/usr/bin/chromium chromium the browser tests (tests/browser/test_ui*.py drive Debian's chromium through Playwright)"
  "/usr/sbin/pgbouncer pgbouncer the connection-pooler tests (tests/integration/test_pgbouncer.py run a private PgBouncer)"
  "/usr/bin/openssl openssl the TLS tests (tests/integration/test_tls.py make a CA and certificates)"
)
# tests/test_packaging.py adds an entry that can never be installed, to see the refusal for a non-root user.
[ -n "${SYSTEM_PACKAGES_EXTRA:-}" ] && NEEDED+=("$SYSTEM_PACKAGES_EXTRA")

missing_pkgs=()
for line in "${NEEDED[@]}"; do
  read -r file pkg why <<<"$line"
  if [ ! -e "$file" ]; then
    missing_pkgs+=("$pkg")
    echo "system_packages: $file is missing: Debian package '$pkg' is needed by $why"
  fi
done

[ ${#missing_pkgs[@]} -eq 0 ] && exit 0
[ "${1:-}" = "--check" ] && exit 1

cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing_pkgs[*]}"
if [ "$(id -u)" = 0 ]; then
  run=(bash -c "$cmd")
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  run=(sudo bash -c "$cmd")
else
  echo "system_packages: cannot install as $(id -un) (not root, no password-less sudo). Run once:" >&2
  echo "    sudo bash -c '$cmd'" >&2
  exit 1
fi

echo "system_packages: installing ${missing_pkgs[*]} (once; later runs find them installed)"
"${run[@]}"
for line in "${NEEDED[@]}"; do
  read -r file pkg _ <<<"$line"
  if [ ! -e "$file" ]; then
    echo "system_packages: '$pkg' installed but $file is still missing" >&2
    exit 1
  fi
done
