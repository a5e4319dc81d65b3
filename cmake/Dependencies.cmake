# Every dependency comes from a Debian 12 package. A missing one stops CMake with
# the name of the package to install (`make deps` installs them all).
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

function(sy_require_pkg target module debpkg)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debpkg}")
  endif()
endfunction()

function(sy_require_cmake_pkg name debpkg)
  find_package(${name} QUIET CONFIG)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "${name} not found: apt-get install ${debpkg}")
  endif()
endfunction()

sy_require_pkg(LIBUV libuv libuv1-dev)
sy_require_pkg(CARES libcares libc-ares-dev)
sy_require_pkg(IDN2 libidn2 libidn2-dev)
sy_require_pkg(SYSTEMD libsystemd libsystemd-dev)
sy_require_cmake_pkg(yaml-cpp libyaml-cpp-dev)
sy_require_cmake_pkg(spdlog libspdlog-dev)
sy_require_cmake_pkg(CLI11 libcli11-dev)
sy_require_cmake_pkg(nlohmann_json nlohmann-json3-dev)
sy_require_cmake_pkg(GTest libgtest-dev)
sy_require_cmake_pkg(benchmark libbenchmark-dev)

find_package(OpenSSL 3 QUIET)
if(NOT OpenSSL_FOUND)
  message(FATAL_ERROR "OpenSSL 3 not found: apt-get install libssl-dev")
endif()

# llhttp: Debian's node-llhttp ships the generated C sources, not a library.
# We compile them into a static library of our own; they are never copied.
set(SY_LLHTTP_DIR "/usr/share/llhttp" CACHE PATH "llhttp C sources (node-llhttp)")
set(SY_LLHTTP_INCLUDE "/usr/share/include/llhttp" CACHE PATH "llhttp header (node-llhttp)")
if(NOT EXISTS "${SY_LLHTTP_DIR}/llhttp.c" OR NOT EXISTS "${SY_LLHTTP_INCLUDE}/llhttp.h")
  message(FATAL_ERROR "llhttp sources not found in ${SY_LLHTTP_DIR}: apt-get install node-llhttp")
endif()
add_library(sy_llhttp STATIC
  ${SY_LLHTTP_DIR}/llhttp.c ${SY_LLHTTP_DIR}/api.c ${SY_LLHTTP_DIR}/http.c)
target_include_directories(sy_llhttp SYSTEM PUBLIC ${SY_LLHTTP_INCLUDE})
set_target_properties(sy_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
# llhttp 8.x parses in "loose" mode unless told otherwise: CR plus any byte
# taken as a line end, any two bytes after chunk data, TAB and bytes >= 0x80
# in the request-target — the request-smuggling class of CVE-2023-30589.
# Switchyard parses strictly (docs/SECURITY.md), with no leniency at all.
target_compile_definitions(sy_llhttp PRIVATE LLHTTP_STRICT_MODE=1)
