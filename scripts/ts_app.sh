#!/usr/bin/env bash
# Installs and builds the TypeScript example DBOS app (examples/ts_worker) for `make ts-app`:
# checks Node.js >= 20 and npm, installs exactly package-lock.json with `npm ci` into
# examples/ts_worker/node_modules (gitignored; no package has install scripts, so none are run),
# then compiles src/ with tsc into dist/. README, "Applications in other languages".
set -euo pipefail
APP="$(cd "$(dirname "$0")/../examples/ts_worker" && pwd)"
need="Node.js >= 20 with npm is needed for the TypeScript example app (tests/test_typescript_app.py):
install it (https://nodejs.org, or the NodeSource packages: Debian 12's own nodejs is 18, too old;
Debian 13's is 20, \`apt-get install nodejs npm\`), then run make again"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "ts-app: node or npm not found. $need" >&2
  exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "ts-app: node $(node --version) is too old. $need" >&2
  exit 1
fi
cd "$APP"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
./node_modules/.bin/tsc -p tsconfig.json
