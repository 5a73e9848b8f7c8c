#!/usr/bin/env bash
# Build llama.cpp's shared libraries for the bundle, portable across x86-64 CPUs.
#
# The pip wheel of llama-cpp-python compiles ggml for the build machine (-march=native):
# a bundle made with it dies with "Illegal instruction" on a CPU without AVX2/FMA. Here
# the same llama.cpp source (vendored in the llama-cpp-python sdist of the same version,
# so the ctypes bindings match) is built with GGML_BACKEND_DL: libllama/libggml/ggml-base
# are generic x86-64, and the CPU kernels are separate libggml-cpu-<variant>.so files
# of which llama.cpp loads the best one for the CPU at run time
# (ggml_backend_load_all_from_path, called by appliance.engine.cpu_backends).
#
# Usage: build_llama_portable.sh VERSION OUTDIR   (OUTDIR receives the .so files)
set -euo pipefail
version="$1"
out="$2"
python="${PYTHON:-python3}"
# AVX is the declared baseline (sandybridge); the others keep new CPUs fast.
variants=(sandybridge ivybridge haswell skylakex icelake)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --no-binary :all: \
  "llama-cpp-python==$version" -d "$work"
tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"

cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_OPENMP=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN' >"$work/cmake.log"
targets=(llama ggml)
for v in "${variants[@]}"; do targets+=("ggml-cpu-$v"); done
cmake --build "$work/build" --config Release -j "$(nproc)" --target "${targets[@]}" \
  >"$work/build.log" || { tail -50 "$work/build.log"; exit 1; }

mkdir -p "$out.part"
find "$work/build" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -P {} "$out.part/" \;
ls "$out.part"
rm -rf "$out"
mv "$out.part" "$out"
