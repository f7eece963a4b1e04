# Run by ctest as `cmake -D... -P run.cmake`: installs the swarm build in SWARM_BINARY_DIR
# into WORK_DIR/prefix, then configures, builds and runs the consumer in CONSUMER_SOURCE_DIR
# against that prefix.
foreach(var SWARM_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: ${var} not set")
  endif()
endforeach()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "package test: ${what} failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")

set(config_args "")
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
run("install" "${CMAKE_COMMAND}" --install "${SWARM_BINARY_DIR}" --prefix "${prefix}" ${config_args})

set(build_type_arg "")
if(CONFIG)
  set(build_type_arg "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
run("configure consumer" "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build"
    -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" ${build_type_arg}
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DSWARM_EXPECTED_PREFIX=${prefix}"
    "-DCMAKE_CXX_FLAGS=${CONSUMER_CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_LINK_FLAGS}"
    "-DSWARM_EXPECTED_ASSERTS=${EXPECTED_ASSERTS}")
run("build consumer" "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" ${config_args})

find_program(consumer_exe consumer PATHS "${WORK_DIR}/build" "${WORK_DIR}/build/${CONFIG}" NO_DEFAULT_PATH)
if(NOT consumer_exe)
  message(FATAL_ERROR "package test: consumer executable not found under ${WORK_DIR}/build")
endif()
run("run consumer" "${consumer_exe}")
message(STATUS "package test: passed")
