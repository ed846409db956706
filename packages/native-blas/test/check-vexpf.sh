#!/usr/bin/env bash
# Exhaustive check of native_blas.c's vectorised expf (vexpf8_sub_avx2, used by beamTopk) against this
# machine's libm expf: every one of the 2^32 float32 bit patterns, bit for bit (NaN: both NaN). Needs an
# x86_64 CPU with AVX2 and FMA, gcc; takes 1-2 CPU minutes. Prints the count of differing inputs and
# exits 1 if there is any. Run once per machine / glibc: bash packages/native-blas/test/check-vexpf.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# the block between the markers, with the headers it needs
{
  echo '#include <immintrin.h>'
  echo '#include <math.h>'
  echo '#include <stdint.h>'
  echo '#include <string.h>'
  sed -n '/vexpf: begin/,/vexpf: end/p' "$here/../src/native_blas.c"
} > "$tmp/vexpf.h"
cat > "$tmp/check.c" <<'C'
#include <stdio.h>
#include "vexpf.h"
int main(void) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    printf("no AVX2 + FMA: vexpf is not used on this CPU\n");
    return 0;
  }
  unsigned long long bad = 0, n = 0;
  float xs[8], ys[8];
  for (unsigned long long u0 = 0; u0 < (1ull << 32); u0 += 8) {
    for (int j = 0; j < 8; j++) {
      uint32_t u = (uint32_t)(u0 + j);
      memcpy(&xs[j], &u, 4);
    }
    vexpf8_sub_avx2(xs, 0.0f, ys);
    for (int j = 0; j < 8; j++, n++) {
      float e = expf(xs[j]);
      if (memcmp(&e, &ys[j], 4) != 0 && !(isnan(e) && isnan(ys[j]))) {
        if (bad < 5) printf("x %a: expf %a, vexpf %a\n", xs[j], e, ys[j]);
        bad++;
      }
    }
  }
  printf("vexpf against expf: %llu float32 inputs, %llu differ\n", n, bad);
  return bad != 0;
}
C
gcc -O2 -std=gnu11 -I"$tmp" "$tmp/check.c" -o "$tmp/check" -lm
"$tmp/check"
