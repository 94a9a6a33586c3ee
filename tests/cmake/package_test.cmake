# Installs the "cpp" component of BUILD into a fresh prefix, then configures, builds and
# runs tests/cmake against it with find_package(dgen CONFIG). Variables: BUILD, SOURCE, WORK,
# GENERATOR, FLAGS (the compiler flags of BUILD, e.g. a sanitizer's).
file(REMOVE_RECURSE "${WORK}")
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD}" --component cpp --prefix "${WORK}/prefix")
run(${CMAKE_COMMAND} -S "${SOURCE}/tests/cmake" -B "${WORK}/build" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${WORK}/prefix" "-DCMAKE_CXX_FLAGS=${FLAGS}")
run(${CMAKE_COMMAND} --build "${WORK}/build")
run("${WORK}/build/example")
