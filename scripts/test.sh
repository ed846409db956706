#!/usr/bin/env bash
# The test command: type-check, rebuild dist/ (the CLI tests run the real binary, so they must never
# see a stale build), then jest, then the plain `N passed, N failed` line CI reads.
set -u
cd "$(dirname "$0")/.."
rc=0
npx tsc -p tsconfig.json || rc=1
# the formatter (.prettierrc.json): `npm run format` rewrites, this only checks
npx prettier --check --log-level warn "src/**/*.ts" "scripts/**/*.ts" "bin/*.js" || { echo "formatting: run 'npm run format'"; rc=1; }
# the translator page (browser code, DOM types): its own config
npx tsc -p src/serve/page/tsconfig.json || rc=1
npx tsc -p tsconfig.build.json || rc=1
rm -f .jest-result.json
NODE_OPTIONS=--experimental-vm-modules npx jest --json --outputFile=.jest-result.json "$@" || rc=1
if [ -f .jest-result.json ]; then
  node -e 'const r=JSON.parse(require("fs").readFileSync(".jest-result.json","utf8"));const f=r.numFailedTests+(r.numRuntimeErrorTestSuites||0);console.log(`${r.numPassedTests} passed, ${f} failed`)'
else
  echo "0 passed, 1 failed"
  rc=1
fi
exit $rc
