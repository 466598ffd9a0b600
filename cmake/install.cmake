# Install rules (REALTIME_INSTALL): the static libraries, the public headers, realtime-server, and a
# CMake package so that an embedder writes
#   find_package(realtime 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE realtime::realtime)
# Tested by tests/package/ (ctest -L package).
include(CMakePackageConfigHelpers)

set(REALTIME_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/realtime)

install(TARGETS realtime realtime_protocol realtime_auth realtime_asio EXPORT realtimeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/realtime DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT development FILES_MATCHING PATTERN "*.hpp")
install(TARGETS realtime-server RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)

install(EXPORT realtimeTargets NAMESPACE realtime:: DESTINATION ${REALTIME_CMAKE_DIR}
        COMPONENT development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/realtimeConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/realtimeConfig.cmake
                              INSTALL_DESTINATION ${REALTIME_CMAKE_DIR})
# Before 1.0 a minor version may change the API: 0.1.x satisfies a request for 0.1, not for 0.2.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/realtimeConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/realtimeConfig.cmake
              ${PROJECT_BINARY_DIR}/realtimeConfigVersion.cmake DESTINATION ${REALTIME_CMAKE_DIR} COMPONENT development)

# The same package from the build tree (realtime_DIR=<build dir>), without installing.
export(EXPORT realtimeTargets NAMESPACE realtime:: FILE ${PROJECT_BINARY_DIR}/realtimeTargets.cmake)
