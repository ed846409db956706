# node-gyp build of the heads OpenBLAS addon. Needs a C compiler, OpenBLAS's cblas.h and libopenblas
# (Debian/Ubuntu: `apt-get install build-essential libopenblas-dev`). /usr/include/openblas covers
# distributions (Fedora, Arch) that keep cblas.h there; a missing include dir is ignored by gcc.
{
  "targets": [
    {
      "target_name": "native_blas",
      "sources": ["src/native_blas.c"],
      "include_dirs": ["/usr/include/openblas"],
      "libraries": ["-lopenblas"],
      "cflags_c": ["-std=gnu11", "-O3", "-fopenmp-simd", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=gnu11", "-O3"]
      }
    }
  ]
}
