# cmake -DMODE=find_package|add_subdirectory -DSOURCE_DIR=<realtime source> -DBUILD_DIR=<its build>
#       -DWORK_DIR=<scratch> -DGENERATOR=... -DCXX_COMPILER=... -DBUILD_TYPE=... -DCXX_FLAGS=...
#       -DSANITIZE=... -DWERROR=... -P run.cmake
# Builds and runs the application of this directory against realtime taken one way:
#   find_package:     `cmake --install BUILD_DIR` into WORK_DIR/prefix (the libraries are already
#                     built there), then find_package(realtime) from that prefix alone;
#   add_subdirectory: the realtime source tree as a subdirectory, built with the same compiler and
#                     flags as BUILD_DIR, so that ccache serves the library's objects.
cmake_minimum_required(VERSION 3.25)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${rc}): ${command}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(consumer_build ${WORK_DIR}/build)
set(configure ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR} -B ${consumer_build} -G ${GENERATOR}
              -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
              "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix --component development)
  # CMAKE_FIND_USE_PACKAGE_REGISTRY=OFF: only the prefix, never a realtime found elsewhere.
  run(${configure} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "add_subdirectory")
  run(${configure} -DREALTIME_SOURCE_DIR=${SOURCE_DIR} "-DREALTIME_SANITIZE=${SANITIZE}"
      -DREALTIME_WERROR=${WERROR})
  # The objects differ from BUILD_DIR's only in the directory they are compiled in, which ccache
  # hashes with debug information unless told not to, as the presets tell it (CMakePresets.json).
  set(ENV{CCACHE_NOHASHDIR} 1)
  if(NOT DEFINED ENV{CCACHE_DIR})
    set(ENV{CCACHE_DIR} ${SOURCE_DIR}/build/.ccache)
  endif()
else()
  message(FATAL_ERROR "MODE must be find_package or add_subdirectory")
endif()
# Only the application and what it links: realtime's tests, benchmarks and examples are off when
# it is not the top-level project.
run(${CMAKE_COMMAND} --build ${consumer_build} --target consumer)
run(${consumer_build}/consumer)
